package fcrt

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// Sentinel errors. Match them with errors.Is.
var (
	// ErrClosed is returned for work the Runtime could not do because it was closed.
	ErrClosed = errors.New("fcrt: runtime closed")
	// ErrInvalidFunction wraps every configuration error reported by Start.
	ErrInvalidFunction = errors.New("fcrt: invalid function")
	// ErrCredentials wraps an error from Function.Credentials.
	ErrCredentials = errors.New("fcrt: no credentials for the invocation")
	// ErrUndelivered is returned by Close when asynchronous invocations were still running or
	// their destination record was still undelivered: they are listed, not dropped silently.
	ErrUndelivered = errors.New("fcrt: asynchronous invocations left unsettled")
)

// UnhandledInvocationError is the X-Fc-Error-Type FC gives every failed invocation of a go1
// function (a returned error, a panic, a timeout, a crash), and the functionError this package
// writes into a destination record's responseContext.
const UnhandledInvocationError = "UnhandledInvocationError"

// Cause says why an invocation failed. FC reports all of these as UnhandledInvocationError;
// the cause is what tests should match, not the message text.
type Cause string

// Causes of a failed invocation.
const (
	// CauseFunction: the function reported the error (POST .../error): a returned error or a
	// panic the SDK recovered.
	CauseFunction Cause = "function"
	// CauseTimeout: the invocation ran past the function's timeout; its instance was killed.
	CauseTimeout Cause = "timeout"
	// CauseCrash: the instance's process exited while the invocation was in flight.
	CauseCrash Cause = "crash"
	// CauseStart: the instance failed to start, or exited before asking for an invocation.
	CauseStart Cause = "start"
	// CauseSystem: the platform could not run the invocation (no credentials for it).
	CauseSystem Cause = "system"
)

// FunctionError is a failed invocation as FC reports it: the JSON body
// {"errorMessage","errorType","stackTrace"} plus why it failed.
type FunctionError struct {
	ErrorMessage string          `json:"errorMessage"`
	ErrorType    string          `json:"errorType,omitempty"`
	StackTrace   json.RawMessage `json:"stackTrace,omitempty"`
	// Cause is set by the runtime; it is not part of FC's body.
	Cause Cause `json:"-"`
}

// Error implements error.
func (e *FunctionError) Error() string {
	if e.ErrorType != "" {
		return fmt.Sprintf("fcrt: %s (%s): %s: %s", UnhandledInvocationError, e.Cause, e.ErrorType, e.ErrorMessage)
	}
	return fmt.Sprintf("fcrt: %s (%s): %s", UnhandledInvocationError, e.Cause, e.ErrorMessage)
}

// body is the JSON FC returns to a synchronous caller for this error.
func (e *FunctionError) body() []byte {
	b, err := json.Marshal(e)
	if err != nil { // StackTrace came from the function and is not valid JSON
		b, _ = json.Marshal(&FunctionError{ErrorMessage: e.ErrorMessage, ErrorType: e.ErrorType})
	}
	return b
}

// parseFunctionError reads the body the SDK posted to .../error. A body that is not FC's JSON
// is kept whole as the message rather than lost.
func parseFunctionError(body []byte) *FunctionError {
	var fe FunctionError
	if err := json.Unmarshal(body, &fe); err != nil || fe.ErrorMessage == "" && fe.ErrorType == "" {
		fe = FunctionError{ErrorMessage: string(body)}
	}
	fe.Cause = CauseFunction
	return &fe
}

// megabytes formats a byte count the way FC's messages do ("9.18MB").
func megabytes(b int64) string {
	return fmt.Sprintf("%.2fMB", float64(b)/(1<<20))
}

// seconds formats a timeout in FC's words: whole seconds when it is whole.
func seconds(d time.Duration) string {
	if d%time.Second == 0 {
		return fmt.Sprintf("%d", d/time.Second)
	}
	return fmt.Sprintf("%g", d.Seconds())
}

func timeoutError(timeout time.Duration, peakRSS int64) *FunctionError {
	return &FunctionError{
		ErrorMessage: fmt.Sprintf("Function timed out after %s seconds (maxMemoryUsage: %s)", seconds(timeout), megabytes(peakRSS)),
		Cause:        CauseTimeout,
	}
}

func crashError(ran time.Duration, peakRSS int64, exit string) *FunctionError {
	return &FunctionError{
		ErrorMessage: fmt.Sprintf("Process exited unexpectedly before completing request (duration: %dms, maxMemoryUsage: %s, %s)",
			ran.Milliseconds(), megabytes(peakRSS), exit),
		Cause: CauseCrash,
	}
}

func startError(binary, reason string) *FunctionError {
	return &FunctionError{
		ErrorMessage: fmt.Sprintf("Function instance exited unexpectedly (%s) with start command '%s'.", reason, binary),
		Cause:        CauseStart,
	}
}
