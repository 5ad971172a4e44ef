package handler

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/enipool/enipool/cloud"
	"github.com/enipool/enipool/deadletter"
	"github.com/enipool/enipool/engine"
	"github.com/enipool/enipool/event"
)

// conclude turns transient failures the platform will not retry into dead letters, sends
// the dead letters, and fills every result.
func (h *Handler) conclude(ctx context.Context, inv Invocation, items []*item, start time.Time) {
	single := singleEvent(items)
	for _, it := range items {
		h.fill(it, start)
		if it.reportOnly && (it.res.Outcome == engine.OutcomeRetry || it.res.Outcome == engine.OutcomeDeadLettered) {
			it.res.Outcome = engine.OutcomeUnresolved
			continue
		}
		if it.held {
			if it.res.Outcome == engine.OutcomeRetry || it.res.Outcome == engine.OutcomeDeadLettered {
				it.res.Outcome, it.res.DeadLetterID = engine.OutcomeDeadLettered, it.message
				it.res.Reason = "kept in the dead-letter queue: " + it.res.Reason
			}
			continue
		}
		if it.res.Outcome == engine.OutcomeRetry && !(single && inv.RetryCount < h.opts.PlatformRetries) {
			// The platform will not retry this one (part of a batch, or its retries are
			// spent): dead-letter it with its own reason, so nothing is lost.
			it.res.Outcome = engine.OutcomeDeadLettered
			it.res.Reason = "gave up retrying: " + it.res.Reason
		}
	}
	h.deadLetter(ctx, inv, items)
}

// singleEvent reports whether every item comes from one event that the platform retries
// with a retry count: then a transient failure can go back to the platform. Events from an
// MNS queue are not: the queue trigger invokes synchronously (no retry count to know the last
// attempt by) and its own dead-letter queue would get the raw event instead of an envelope,
// so their transient failures are dead-lettered at once, with action "retry".
func singleEvent(items []*item) bool {
	if len(items) == 0 || items[0].req.Channel == event.ChannelQueue {
		return false
	}
	for _, it := range items[1:] {
		if !bytes.Equal(it.req.Raw, items[0].req.Raw) {
			return false
		}
	}
	return true
}

// fill completes an item's result from its outcome: the ENI it names first, the code, the
// verdict and the reason.
func (h *Handler) fill(it *item, start time.Time) {
	res := &it.res
	if res.DurationMs == 0 {
		res.DurationMs = h.clock.Now().Sub(start).Milliseconds()
	}
	if len(res.ENIs) > 0 {
		res.NetworkInterfaceID, res.PrivateIP = res.ENIs[0].ID, res.ENIs[0].PrivateIP
		if len(res.ENIs) == 1 {
			res.ENIs = nil
		}
	}
	if it.err != nil {
		verdict, rule := cloud.Classify(it.err)
		res.Code, res.Verdict = rule.Code, verdict
		if code, _ := cloud.CodeOf(it.err); code != "" {
			res.Code = code
		}
		res.Reason = reason(it.err, rule)
	}
}

// reason is the human sentence for an outcome: what happened, then what to do.
func reason(err error, rule cloud.Rule) string {
	var p *cloud.Problem
	if errors.As(err, &p) {
		if p.Err == nil {
			return p.Msg
		}
		return p.Msg + ": " + p.Err.Error()
	}
	msg := err.Error()
	if rule.Meaning != "" {
		msg += ". " + rule.Meaning
	}
	return msg
}

// deadLetter sends the dead letters of the dead-lettered items (see letters). A send that
// fails leaves its events failed, so the invocation returns an error and the platform keeps
// them.
func (h *Handler) deadLetter(ctx context.Context, inv Invocation, items []*item) {
	var todo []*item
	for _, it := range items {
		if it.res.Outcome == engine.OutcomeDeadLettered && !it.held {
			todo = append(todo, it)
		}
	}
	if len(todo) == 0 {
		return
	}
	letters := h.letters(inv, todo)
	fail := func(l *letter, why string) {
		for _, it := range l.items {
			it.res.Outcome = engine.OutcomeFailed
			it.res.Reason += " (" + why + ")"
		}
	}
	clients, err := h.connect(ctx, inv, firstNonEmpty(inv.Region, h.opts.Region))
	if err != nil {
		for _, l := range letters {
			fail(l, "dead-letter queue unreachable: "+err.Error())
		}
		return
	}
	sem := make(chan struct{}, 8)
	var wg sync.WaitGroup
	for _, l := range letters {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			id, err := h.sendDeadLetter(ctx, clients.DeadLetters, l.env)
			if err != nil {
				fail(l, "dead letter not sent: "+err.Error())
				return
			}
			for _, it := range l.items {
				it.res.DeadLetterID = id
			}
		}()
	}
	wg.Wait()
}

func (h *Handler) sendDeadLetter(ctx context.Context, dlq cloud.DeadLetters, env *deadletter.Envelope) (string, error) {
	body, err := deadletter.Marshal(env)
	if err != nil {
		return "", fmt.Errorf("encode envelope: %w", err)
	}
	var id string
	err = h.engine.Retry(ctx, func(ctx context.Context) (err error) {
		id, err = dlq.Send(ctx, body)
		return err
	})
	return id, err
}

// envelope builds the dead letter of an item: the original event verbatim and all that is
// needed to act on it or replay it.
func (h *Handler) envelope(inv Invocation, it *item) *deadletter.Envelope {
	r, res := it.req, it.res
	env := &deadletter.Envelope{
		Reason:            res.Reason,
		Verdict:           string(res.Verdict),
		InstanceID:        res.InstanceID,
		Region:            firstNonEmpty(it.region, inv.Region, h.opts.Region),
		Pool:              res.Pool,
		Zone:              res.Zone,
		Attempts:          res.Attempts,
		ENIsTried:         []string{},
		FunctionName:      inv.FunctionName,
		FunctionRequestID: inv.RequestID,
		FCRetryCount:      inv.RetryCount,
		Time:              h.clock.Now().UTC(),
		Source:            r.Source, // the carrier it really came on, never what a letter inside claims
		Channel:           string(r.Channel),
		EventID:           r.EventID,
		Event:             r.Raw,
	}
	if it.tried != nil {
		env.VPCID, env.ENIsTried = it.vpc, it.tried
	}
	if rd := r.Redrive; rd != nil {
		env.RedriveCount = rd.RedriveCount
		env.EventID = firstNonEmpty(rd.EnvelopeEventID, env.EventID)
	}
	// The result's code is the one the error table decided on; the API error behind it, if
	// any, adds where it came from.
	env.Error = &deadletter.Error{Code: res.Code, Message: res.Reason}
	var ae *cloud.APIError
	if errors.As(it.err, &ae) {
		env.Error.Service, env.Error.API, env.Error.HTTPStatus, env.Error.RequestID = ae.Service, ae.API, ae.HTTPStatus, ae.RequestID
		env.Error.Message = ae.Message
		if ae.Code == "" && ae.Err != nil {
			env.Error.Message = ae.Err.Error()
		}
	}
	return env
}

// logResult writes the one structured line of an outcome.
func (h *Handler) logResult(inv Invocation, res Result) {
	level := slog.LevelInfo
	switch res.Outcome {
	case engine.OutcomeDeadLettered, engine.OutcomeRetry, engine.OutcomeUnresolved:
		level = slog.LevelWarn
	case engine.OutcomeFailed:
		level = slog.LevelError
	}
	attrs := []slog.Attr{
		slog.String("outcome", string(res.Outcome)),
		slog.String("instanceId", res.InstanceID),
		slog.String("networkInterfaceId", res.NetworkInterfaceID),
		slog.String("privateIpAddress", res.PrivateIP),
		slog.String("pool", res.Pool),
		slog.String("zone", res.Zone),
		slog.String("code", res.Code),
		slog.String("reason", res.Reason),
		slog.Int("attempts", res.Attempts),
		slog.Int("apiCalls", res.APICalls),
		slog.Int64("durationMs", res.DurationMs),
		slog.String("fcRequestId", inv.RequestID),
		slog.Any("requestIds", res.RequestIDs),
		slog.String("source", res.Source),
		slog.String("eventId", res.EventID),
	}
	if res.DeadLetterID != "" {
		attrs = append(attrs, slog.String("deadLetterMessageId", res.DeadLetterID))
	}
	// Every pool ENI the instance holds at the end (networkInterfaceId is the first of them).
	if holds := res.holds(); len(holds) > 0 {
		attrs = append(attrs, slog.Any("holds", holds))
	}
	if len(res.Detached) > 0 {
		attrs = append(attrs, slog.Any("detached", res.Detached))
	}
	h.log.LogAttrs(context.Background(), level, "enipool."+string(res.Outcome), attrs...)
}
