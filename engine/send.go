package engine

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/enipool/enipool/clock"
	"github.com/enipool/enipool/cloud"
)

// attach sends the attaches, at most Concurrency at once; the ECS they go through paces them
// (Engine.Paced).
func (e *attachRun) attach(ctx context.Context, jobs []attachJob) {
	sem := make(chan struct{}, e.eng.cfg.Concurrency)
	var wg sync.WaitGroup
	for _, j := range jobs {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			e.attachOne(ctx, j)
		}()
	}
	wg.Wait()
}

func (e *attachRun) attachOne(ctx context.Context, j attachJob) {
	t := j.t
	var reqID string
	err := e.ecs.AttachENI(cloud.WithCallObserver(ctx, func(c cloud.Call) { reqID = c.RequestID }), j.eni, t.id)
	if ns := (*notSent)(nil); errors.As(err, &ns) {
		// Never sent: no attempt. Its turn comes after ns.After; the claim is kept.
		if ns.After > 0 {
			e.mu.Lock()
			t.retryAt = e.eng.clock.Now().Add(ns.After)
			e.mu.Unlock()
		}
		return
	}
	now := e.eng.clock.Now()

	e.mu.Lock()
	defer e.mu.Unlock()
	t.calls++
	t.attempts++
	t.lastTry = now
	if reqID != "" {
		t.requestIDs = append(t.requestIDs, reqID)
	}
	rec := t.rec(j.eni)
	if err == nil {
		rec.attach, rec.acceptedAt = attachPending, now
		t.undrop(j.eni)
		return
	}
	if code, _ := cloud.CodeOf(err); code != "" || ctx.Err() == nil || t.lastErr == nil {
		// A call the deadline cut short says nothing about the cloud: the answer before it
		// stays the cause the result names.
		t.lastErr = err
	}
	verdict, rule := cloud.Classify(err)
	switch verdict {
	case cloud.VerdictNextENI:
		if rec.uncertain && rule.Code == "InvalidOperation.InvalidEniState" {
			// The earlier call whose answer was lost went through: the ENI is attaching,
			// most likely here. Wait for it like for an accepted attach; a lagging read
			// may not show it yet.
			rec.attach, rec.acceptedAt = attachPending, now
			t.undrop(j.eni)
			return
		}
		rec.refused, rec.uncertain = true, false
		e.eng.claims.unclaim(j.eni, t.id)
		if rule.Code == "InvalidOperation.InvalidEniState" {
			// Maybe a duplicate of this event won it for this instance: look, and until a
			// read says where it went, attach nothing else in its place.
			t.want(stateLookENIs)
			rec.contestedAt = now
		}
	case cloud.VerdictRetry, cloud.VerdictWaitInstance:
		if verdict == cloud.VerdictWaitInstance {
			// ECS says the instance is in no state to take an ENI: it may be stopping while
			// the first look (a lagging read) still showed it Running. Look at it again
			// before the retry, so that an instance on its way to Stopped is not given an
			// ENI once it gets there (ECS attaches to Stopped instances).
			t.want(stateLookInstance)
		}
		if maybeApplied(err) {
			// The call may have been applied and only its answer lost. The same ENI is
			// tried again: a refusal then says the first call went through (see below).
			rec.uncertain, rec.uncertainAt = true, now
		}
		// Keep the claim: the same ENI is tried again after the back-off.
		if throttled(err) {
			t.retryAt = now.Add(e.throttleWait(ctx, t))
		} else {
			t.retryAt = now.Add(t.retry.next())
		}
	case cloud.VerdictSkip:
		t.finish(OutcomeSkipped, err)
	default:
		if rule.Code == "EniPerInstanceLimitExceeded" {
			// Possibly full of the pool's own ENIs, attached by duplicates of this event:
			// decided once the reads catch up (decideAndAttach).
			e.eng.claims.unclaim(j.eni, t.id)
			if t.fullAt.IsZero() {
				t.fullAt, t.fullErr = now, err
			}
			t.want(stateLookENIs)
			return
		}
		t.finish(OutcomeDeadLettered, err)
	}
}

// throttleWait is how long t waits after ECS throttled its attach: t's full-jitter back-off,
// but no more than half the time ctx has left beyond a typical attach, so that one more
// throttled try still leaves room for another and the attach that finally goes out can be
// confirmed in this invocation.
func (e *attachRun) throttleWait(ctx context.Context, t *target) time.Duration {
	d := t.throttle.next()
	if left, ok := clock.Left(ctx); ok {
		d = min(d, max(0, left-e.eng.attachTime.typical())/2)
	}
	return d
}

// maybeApplied reports whether a failed call may still have been applied: the request went
// out and no answer, or a server error, came back. Throttling refuses before acting.
func maybeApplied(err error) bool {
	code, _ := cloud.CodeOf(err)
	return code == "" || code == "InternalError" || code == "ServiceUnavailable" || code == "UnknownError"
}
