package harness

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/enipool/enipool/handler"
	"github.com/enipool/enipool/localcloud/record"
)

// SingleParams configure the single-event latency scenario.
type SingleParams struct {
	Cloud CloudParams `json:"cloud"`
	// Warmup events run first on the same handler and are reported apart; Events are the
	// sample. Each event is an EventBridge ECS Running event for an instance not seen before.
	Warmup int `json:"warmup"`
	Events int `json:"events"`
	// FirstGuess sets ENIPOOL_ATTACH_TIME; 0 leaves it unset (the production default).
	FirstGuess Duration `json:"firstGuessMs"`
}

// EventSample is one event of the single-event scenario, with the cloud's record of it.
type EventSample struct {
	Instance string   `json:"instance"`
	Latency  Duration `json:"latencyMs"` // Invoke's start to its return: the ENI confirmed InUse
	Outcome  string   `json:"outcome"`
	ECSCalls int      `json:"ecsCalls"`
	// PollWait is from the attach call's answer to the arrival of the first confirmation
	// poll (the first ECS call after the attach): how long the handler waited before looking.
	PollWait Duration `json:"pollWaitMs"`
	// CloudTime is the sum of the cloud's time on the event's ECS calls (the injected latency
	// included); Latency - CloudTime is the time spent in the handler, the SDKs and loopback.
	CloudTime Duration `json:"cloudTimeMs"`
	// Calls is the event's ECS calls as the cloud saw them, in order.
	Calls []CallAt `json:"calls"`
}

// CallAt is one recorded call relative to the start of its invocation.
type CallAt struct {
	Action string   `json:"action"`
	Code   string   `json:"code,omitempty"`
	At     Duration `json:"atMs"`     // arrival at the cloud, from the invocation's start
	Served Duration `json:"servedMs"` // the cloud's time on it, the injected latency included
	Params string   `json:"params,omitempty"`
}

// SingleResult is what the single-event scenario measured.
type SingleResult struct {
	Params SingleParams `json:"params"`
	// FirstGuess is the attach time the handler started from (the default when unset).
	FirstGuess Duration `json:"firstGuessMs"`
	// Floor is the model this benchmark has held one event against, 3L + T + L
	// (docs/performance.md derives the tighter 3L + T).
	Floor  Duration      `json:"floorMs"`
	Warmup []EventSample `json:"warmup"`
	Sample []EventSample `json:"sample"`
	P50    Duration      `json:"p50Ms"`
	P99    Duration      `json:"p99Ms"`
	Min    Duration      `json:"minMs"`
	Max    Duration      `json:"maxMs"`
	// ECSCallsPerEvent is the mean of the sample's ECS calls per event.
	ECSCallsPerEvent float64 `json:"ecsCallsPerEvent"`
	// TypeLookupsInSample counts DescribeInstanceTypes calls made by sampled events.
	TypeLookupsInSample int `json:"typeLookupsInSample"`
	// PollWaitP50 is the median of the sample's PollWait.
	PollWaitP50 Duration `json:"pollWaitP50Ms"`
	Audit       Audit    `json:"audit"`
	Outcomes    Outcomes `json:"outcomes"`
}

// Single runs Warmup then Events single events, one after the other, each for a fresh
// instance, on one handler (one warm function instance).
func Single(ctx context.Context, p SingleParams) (*SingleResult, error) {
	n := p.Warmup + p.Events
	if p.Cloud.Instances < n || p.Cloud.Pool < n {
		return nil, fmt.Errorf("harness: single: %d events need as many instances and pool ENIs (have %d, %d)", n, p.Cloud.Instances, p.Cloud.Pool)
	}
	env := map[string]string{}
	guess := handler.DefaultOptions().AttachTime
	if p.FirstGuess > 0 {
		env["ENIPOOL_ATTACH_TIME"] = p.FirstGuess.D().String()
		guess = p.FirstGuess.D()
	}
	b, err := NewBed(p.Cloud, env)
	if err != nil {
		return nil, err
	}
	defer b.Close()
	L, T := p.Cloud.Latency.D(), p.Cloud.AttachTime.D()
	res := &SingleResult{Params: p, FirstGuess: Duration(guess), Floor: Duration(3*L + T + L)}

	var ids []string
	var done []Done
	sampleFrom := int64(0)
	for i := range n {
		if i == p.Warmup {
			sampleFrom = b.LastSeq()
		}
		id := InstanceID(i)
		ids = append(ids, id)
		before := b.LastSeq()
		d := b.Invoke(ctx, ECSRunning(id, b.Cloud.Region, b.Cloud.AccountID))
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		done = append(done, d)
		s := b.sample(id, d, before)
		if i < p.Warmup {
			res.Warmup = append(res.Warmup, s)
		} else {
			res.Sample = append(res.Sample, s)
		}
	}
	var lat, waits []time.Duration
	calls := 0
	for _, s := range res.Sample {
		lat = append(lat, s.Latency.D())
		waits = append(waits, s.PollWait.D())
		calls += s.ECSCalls
		for _, c := range s.Calls {
			if c.Action == "DescribeInstanceTypes" {
				res.TypeLookupsInSample++
			}
		}
	}
	res.P50, res.P99 = Duration(Percentile(lat, 50)), Duration(Percentile(lat, 99))
	res.Min, res.Max = Duration(slices.Min(lat)), Duration(slices.Max(lat))
	res.PollWaitP50 = Duration(Percentile(waits, 50))
	res.ECSCallsPerEvent = float64(calls) / float64(len(res.Sample))
	res.Audit = b.Audit(ctx, ids[p.Warmup:], sampleFrom)
	res.Outcomes = Tally(done[p.Warmup:])
	return res, nil
}

// sample describes one finished event from the calls recorded after seq.
func (b *Bed) sample(id string, d Done, seq int64) EventSample {
	s := EventSample{Instance: id, Latency: Duration(d.Duration), Outcome: "no response"}
	if d.Resp != nil && len(d.Resp.Results) == 1 {
		s.Outcome = string(d.Resp.Results[0].Outcome)
	}
	var attachEnd time.Time
	for _, c := range b.Cloud.Calls.Calls(func(c record.Call) bool { return c.Seq > seq && c.Service == "ecs" }) {
		s.ECSCalls++
		at := CallAt{Action: c.Action, Code: c.Code, At: Duration(c.Time.Sub(d.Start)), Served: Duration(c.Latency)}
		var ps []string
		for _, k := range []string{"InstanceId", "NetworkInterfaceId", "InstanceIds", "InstanceTypes"} {
			if v := c.Params[k]; v != "" {
				ps = append(ps, k+"="+v)
			}
		}
		at.Params = strings.Join(ps, " ")
		s.Calls = append(s.Calls, at)
		s.CloudTime += at.Served
		switch {
		case c.Action == "AttachNetworkInterface" && c.OK():
			attachEnd = c.Time.Add(c.Latency)
		case !attachEnd.IsZero() && s.PollWait == 0:
			s.PollWait = Duration(c.Time.Sub(attachEnd))
		}
	}
	slices.SortFunc(s.Calls, func(x, y CallAt) int { return int(x.At - y.At) })
	return s
}
