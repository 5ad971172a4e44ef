package mns

import (
	"fmt"
	"net/http"
)

// Error codes served by the emulator. The HTTP status and default message of each are in
// errorTable; the package documentation says where each one comes from.
const (
	CodeAccessDenied               = "AccessDenied"
	CodeInvalidAccessKeyID         = "InvalidAccessKeyId"
	CodeInternalError              = "InternalError"
	CodeInvalidAuthorizationHeader = "InvalidAuthorizationHeader"
	CodeInvalidDateHeader          = "InvalidDateHeader"
	CodeInvalidArgument            = "InvalidArgument"
	// CodeInvalidDigest is spelled the way MNS spells it on the wire ("Degist"): every
	// version of the MNS error-code table and every official SDK (Go, Java, Python) use
	// this spelling, so a faithful emulator must too.
	CodeInvalidDigest            = "InvalidDegist"
	CodeInvalidRequestURL        = "InvalidRequestURL"
	CodeMalformedXML             = "MalformedXML"
	CodeMissingAuthorization     = "MissingAuthorizationHeader"
	CodeMissingDateHeader        = "MissingDateHeader"
	CodeMissingVersionHeader     = "MissingVersionHeader"
	CodeInvalidVersionHeader     = "InvalidVersionHeader"
	CodeMissingReceiptHandle     = "MissingReceiptHandle"
	CodeMissingVisibilityTimeout = "MissingVisibilityTimeout"
	CodeMessageNotExist          = "MessageNotExist"
	CodeQueueAlreadyExist        = "QueueAlreadyExist"
	CodeInvalidQueueName         = "InvalidQueueName"
	CodeQueueNameLengthError     = "QueueNameLengthError"
	CodeQueueNotExist            = "QueueNotExist"
	CodeReceiptHandleError       = "ReceiptHandleError"
	CodeSignatureDoesNotMatch    = "SignatureDoesNotMatch"
	CodeTimeExpired              = "TimeExpired"
	CodeQPSLimitExceeded         = "QpsLimitExceeded"
	CodeTooManyRequests          = "TooManyRequests"
	CodeServiceUnavailable       = "ServiceUnavailable"
)

type errorInfo struct {
	status  int
	message string
}

// errorTable holds the HTTP status and default message of every code the emulator serves.
// Messages are the ones MNS returns, typos included ("is not exist", "Interal").
var errorTable = map[string]errorInfo{
	CodeAccessDenied:               {http.StatusForbidden, "The OwnerId that your Access Key Id associated to is forbidden for this operation."},
	CodeInvalidAccessKeyID:         {http.StatusForbidden, "The AccessKey Id you provided is not exist."},
	CodeInternalError:              {http.StatusInternalServerError, "Interal error."},
	CodeInvalidAuthorizationHeader: {http.StatusBadRequest, "The Authorization header format is invalid."},
	CodeInvalidDateHeader:          {http.StatusBadRequest, "The Date header format is invalid."},
	CodeInvalidArgument:            {http.StatusBadRequest, "The XML you provided did not validate against our published schema."},
	CodeInvalidDigest:              {http.StatusBadRequest, "The Content-MD5 you specified is invalid."},
	CodeInvalidRequestURL:          {http.StatusBadRequest, "Http request URL format invalid."},
	CodeMalformedXML:               {http.StatusBadRequest, "The XML you provided was not well-formed."},
	CodeMissingAuthorization:       {http.StatusBadRequest, "Authorization header is required."},
	CodeMissingDateHeader:          {http.StatusBadRequest, "Date header is required."},
	CodeMissingVersionHeader:       {http.StatusBadRequest, "x-mns-version header is required."},
	CodeInvalidVersionHeader:       {http.StatusBadRequest, "The x-mns-version header you provided is invalid."},
	CodeMissingReceiptHandle:       {http.StatusBadRequest, "ReceiptHandle is required."},
	CodeMissingVisibilityTimeout:   {http.StatusBadRequest, "VisibilityTimeout is required."},
	CodeMessageNotExist:            {http.StatusNotFound, "Message not exist."},
	CodeQueueAlreadyExist:          {http.StatusConflict, "The queue you want to create is already exist."},
	CodeInvalidQueueName:           {http.StatusBadRequest, "The queue name you provided is invalid. QueueName should start with alpha and contain only alpha, digit or - ."},
	CodeQueueNameLengthError:       {http.StatusBadRequest, "Queue name length should between 1 and 256."},
	CodeQueueNotExist:              {http.StatusNotFound, "The queue name you provided is not exist."},
	CodeReceiptHandleError:         {http.StatusBadRequest, "The receipt handle you provide is not valid."},
	CodeSignatureDoesNotMatch:      {http.StatusForbidden, "The request signature we calculated does not match the signature you provided. Check your key and signing method."},
	CodeTimeExpired:                {http.StatusRequestTimeout, "The http request you sent is expired."},
	CodeQPSLimitExceeded:           {http.StatusBadRequest, "The qps limit of the queue is exceeded."},
	CodeTooManyRequests:            {http.StatusTooManyRequests, "The request is denied by cluster flow limiter for too many requests."},
	CodeServiceUnavailable:         {http.StatusServiceUnavailable, "The request has failed due to a temporary failure of the server."},
}

// Error is an MNS error answer: the code, the HTTP status real MNS pairs with it, and a
// message. The HTTP handler writes it as an <Error> document; the Go API returns it.
// Match it with errors.Is against the Err* values (codes are compared) or errors.As.
type Error struct {
	Status  int
	Code    string
	Message string
}

// Error implements error.
func (e *Error) Error() string {
	return fmt.Sprintf("mns: %s (HTTP %d): %s", e.Code, e.Status, e.Message)
}

// Is reports whether target is an *Error with the same code.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Code == e.Code
}

// Sentinel errors of the Go API, matched by code with errors.Is.
var (
	ErrQueueNotExist      = newError(CodeQueueNotExist, "")
	ErrMessageNotExist    = newError(CodeMessageNotExist, "")
	ErrServiceUnavailable = newError(CodeServiceUnavailable, "")
	// ErrConnectionReset is what the Go API reports when the fault plan resets the
	// connection of a call that has no connection (Deliver).
	ErrConnectionReset = &Error{Status: 0, Code: "ConnectionReset", Message: "the connection was reset by the fault plan"}
)

// newError builds an Error for code with the table's status; message overrides the
// table's default message when non-empty. Unknown codes answer 500, the way an unknown
// server-side failure would.
func newError(code, message string) *Error {
	info, ok := errorTable[code]
	if !ok {
		info = errorInfo{http.StatusInternalServerError, "Interal error."}
	}
	if message == "" {
		message = info.message
	}
	return &Error{Status: info.status, Code: code, Message: message}
}

// errorf is newError with a formatted message.
func errorf(code, format string, args ...any) *Error {
	return newError(code, fmt.Sprintf(format, args...))
}

// rangeError is the InvalidArgument MNS answers for a value outside its range, worded the
// way the MNS error table and real responses word it ("The value of Priority should
// between 1 and 16").
func rangeError(element string, low, high int64, unit string) *Error {
	msg := fmt.Sprintf("The value of %s should between %d and %d", element, low, high)
	if unit != "" {
		msg += " " + unit
	}
	return newError(CodeInvalidArgument, msg+".")
}
