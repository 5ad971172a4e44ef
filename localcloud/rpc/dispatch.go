package rpc

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"time"

	"github.com/enipool/enipool/localcloud/auth"
	"github.com/enipool/enipool/localcloud/fault"
	"github.com/enipool/enipool/localcloud/record"
)

// ErrAnswerLost is what Dispatch returns for a call whose connection a fault dropped: a
// reset before the action (nothing applied) or after it (applied, the answer lost). A
// client sees no error code, only a transport failure.
var ErrAnswerLost = errors.New("rpc: connection reset, no answer")

// Dispatch serves one call in process, without HTTP, signatures or replay checks: what a
// simulation needs to call the emulated rules from the goroutine of its caller, on its
// clock. The principal stands for an authenticated caller. Everything after authentication
// happens as in ServeHTTP (steps 9 to 14 of the package doc, in that order): the parameter
// names, request latency, throttling, faults before the action, the action, response latency
// and faults after it. The waits are timers on ctx, so inside a testing/synctest bubble
// they take no real time.
//
// It returns the action's response object (the value a handler returned, without
// RequestId) and the request id the call was given, or an error: an *Error for an API
// error, ErrAnswerLost for a dropped connection, or ctx's error when the caller gave up
// during a wait.
func (s *Service) Dispatch(ctx context.Context, p auth.Principal, action string, params url.Values) (res any, requestID string, err error) {
	requestID = newRequestID()
	start := time.Now()
	var faults string
	note := func(f string) {
		if faults != "" {
			faults += ","
		}
		faults += f
	}
	defer func() {
		if s.opts.Recorder == nil {
			return
		}
		status, code := http.StatusOK, ""
		var e *Error
		switch {
		case errors.As(err, &e):
			status, code = e.Status, e.Code
		case err != nil:
			status = 0
		}
		s.opts.Recorder.Add(record.Call{Time: start, Service: s.opts.Service, Action: action, Principal: p.Name,
			Params: record.Redact(params), RequestID: requestID, HTTPStatus: status, Code: code, Fault: faults,
			Latency: time.Since(start)})
	}()
	wait := func(d time.Duration) error {
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-ctx.Done():
			note("client-gone")
			return ctx.Err()
		case <-t.C:
			return nil
		}
	}

	act, ok := s.actions[action]
	if !ok {
		return nil, requestID, &Error{Status: http.StatusNotFound, Code: "InvalidAction.NotFound", Message: msgActionNotFound}
	}
	for name := range params {
		if !act.params.allows(name) {
			return nil, requestID, UnsupportedParameter(name)
		}
	}
	var d fault.Decision
	if s.opts.Faults != nil {
		d = s.opts.Faults.Decide(s.opts.Service, action)
		if d.Delay > 0 {
			note("delay=" + d.Delay.String())
			if err := wait(d.Delay); err != nil {
				return nil, requestID, err
			}
		}
	}
	// An error answer travels back as any answer does: it pays the response latency too.
	refuse := func(e *Error) (any, string, error) {
		if d.ResponseDelay > 0 {
			note("response-delay=" + d.ResponseDelay.String())
			if err := wait(d.ResponseDelay); err != nil {
				return nil, requestID, err
			}
		}
		return nil, requestID, e
	}
	if !s.opts.Limiter.Allow(s.opts.Service, action, p.AccountID, s.opts.Now()) {
		return refuse(&Error{Status: http.StatusBadRequest, Code: "Throttling.User", Message: msgThrottled})
	}
	switch {
	case d.Outage:
		note("outage")
		return refuse(&Error{Status: http.StatusServiceUnavailable, Code: "ServiceUnavailable", Message: msgUnavailable})
	case d.Error != nil && d.Error.Reset:
		note("reset")
		return nil, requestID, ErrAnswerLost
	case d.Error != nil:
		e := ruleError(d.Error)
		note("error=" + e.Code)
		return refuse(e)
	}
	c := &Call{Service: s.opts.Service, Action: action, Params: params, Principal: p, RegionID: params.Get("RegionId"),
		SourceIP: "127.0.0.1", RequestID: requestID, Time: s.opts.Now(), Lag: d.Lag, svc: s}
	res, err = act.Handle(ctx, c)
	if d.ResponseDelay > 0 {
		note("response-delay=" + d.ResponseDelay.String())
		if err := wait(d.ResponseDelay); err != nil {
			return nil, requestID, err
		}
	}
	if err != nil {
		return nil, requestID, err
	}
	if s.opts.Faults != nil {
		if a := s.opts.Faults.DecideAfter(s.opts.Service, action); a != nil {
			return nil, requestID, dispatchLost(a, wait, note)
		}
	}
	return res, requestID, nil
}

// dispatchLost is loseAnswer for Dispatch: the error the caller of an applied call sees.
func dispatchLost(a *fault.AfterRule, wait func(time.Duration) error, note func(string)) error {
	switch a.Kind {
	case fault.AfterError:
		e := afterError(a)
		note("after-action-error=" + e.Code)
		return e
	case fault.AfterTimeout:
		note("after-action-timeout")
		if err := wait(a.HoldFor()); err != nil {
			return err
		}
		return ErrAnswerLost
	default:
		note("after-action-reset")
		return ErrAnswerLost
	}
}

// ruleError is the API error an injected error rule answers.
func ruleError(r *fault.Rule) *Error {
	return filledError(r.HTTPStatus, r.Code, r.Message, http.StatusInternalServerError, "InternalError", msgInternal)
}

// filledError is the API error of a fault rule, its blanks filled with the defaults.
func filledError(status int, code, msg string, defStatus int, defCode, defMsg string) *Error {
	e := &Error{Status: status, Code: code, Message: msg}
	if e.Status == 0 {
		e.Status = defStatus
	}
	if e.Code == "" {
		e.Code = defCode
	}
	if e.Message == "" {
		e.Message = defMsg
	}
	return e
}
