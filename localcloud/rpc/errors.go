package rpc

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"

	"github.com/enipool/enipool/localcloud/auth"
	"github.com/enipool/enipool/localcloud/ram"
)

// Error is an API error answered to the client: an HTTP status, a code and a message.
// Handlers return it (wrapped or not); any other error becomes InternalError 500.
type Error struct {
	Status  int
	Code    string
	Message string
	// AccessDeniedDetail is sent as the AccessDeniedDetail object on RAM denials.
	AccessDeniedDetail map[string]string
}

// Error implements the error interface.
func (e *Error) Error() string { return fmt.Sprintf("%s (%d): %s", e.Code, e.Status, e.Message) }

// Errorf returns an *Error with a formatted message.
func Errorf(status int, code, format string, args ...any) *Error {
	return &Error{Status: status, Code: code, Message: fmt.Sprintf(format, args...)}
}

// Messages of the common errors, as the real gateway words them.
const (
	msgInternal        = "The request processing has failed due to some unknown error, exception or failure."
	msgUnavailable     = "The request has failed due to a temporary failure of the server."
	msgThrottled       = "Request was denied due to user flow control."
	msgSignature       = "Specified signature is not matched with our calculation. server string to sign is:"
	msgRAM             = "User not authorized to operate on the specified resource, or this API doesn't support RAM."
	msgIncomplete      = "The request signature does not conform to Aliyun standards."
	msgActionNotFound  = "Specified api is not found, please check your url and method."
	msgInvalidVersion  = "Specified parameter Version is not valid."
	msgInvalidFormat   = "Specified parameter Format is not valid."
	msgTimestampFormat = "Specified time stamp or date value is not well formatted."
	msgTimestampOld    = "Specified time stamp or date value is expired."
	msgNonceUsed       = "Specified signature nonce was used already."
	msgKeyNotFound     = "Specified access key is not found."
	msgKeyDisabled     = "Specified access key is disabled."
	msgTokenExpired    = "Specified SecurityToken is expired."
	msgTokenMismatch   = "Specified SecurityToken mismatch with the AccessKey."
	msgTokenMalformed  = "Specified SecurityToken is malformed."
	msgTokenMissing    = "SecurityToken is missing."
	msgAccountNotFound = "The Alibaba Cloud account does not exist or the AccessKey pair has expired."
	msgMethod          = "Specified HTTP method is not supported."
)

// MissingParameter is the error for an absent required parameter.
func MissingParameter(name string) *Error {
	return Errorf(http.StatusBadRequest, "MissingParameter",
		"The input parameter %q that is mandatory for processing this request is not supplied.", name)
}

// InvalidParameter is the error for a parameter with a bad value; why may be empty.
func InvalidParameter(name, why string) *Error {
	msg := fmt.Sprintf("The specified parameter %q is not valid.", name)
	if why != "" {
		msg += " " + why
	}
	return &Error{Status: http.StatusBadRequest, Code: "InvalidParameter", Message: msg}
}

// UnsupportedParameter is the error for a parameter the action does not take.
func UnsupportedParameter(name string) *Error {
	return Errorf(http.StatusBadRequest, "UnsupportedParameter", "The parameter %q is not supported.", name)
}

// InternalError is the error for a failure of the emulator itself.
func InternalError() *Error {
	return &Error{Status: http.StatusInternalServerError, Code: "InternalError", Message: msgInternal}
}

// Forbidden turns a RAM denial into Forbidden.RAM 403 with an AccessDeniedDetail like the
// real one (the principal, the action, whether the deny was explicit; the encoded
// diagnostic carries the resource).
func Forbidden(d *ram.DeniedError) *Error {
	ptype := "SubUser"
	if d.Principal.Kind == auth.KindRole {
		ptype = "AssumedRoleUser"
	}
	noPerm := "ImplicitDeny"
	if d.Explicit {
		noPerm = "ExplicitDeny"
	}
	diag, _ := json.Marshal(map[string]string{"Action": d.Action, "Resource": d.Resource})
	return &Error{
		Status:  http.StatusForbidden,
		Code:    "Forbidden.RAM",
		Message: msgRAM,
		AccessDeniedDetail: map[string]string{
			"AuthAction":               d.Action,
			"AuthPrincipalType":        ptype,
			"AuthPrincipalDisplayName": d.Principal.Name,
			"AuthPrincipalOwnerId":     d.Principal.AccountID,
			"NoPermissionType":         noPerm,
			"PolicyType":               "AccountLevelIdentityBasedPolicy",
			"EncodedDiagnosticMessage": base64.StdEncoding.EncodeToString(diag),
		},
	}
}
