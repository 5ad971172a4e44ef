package trigger

import (
	"encoding/json"
	"errors"
	"testing"
	"time"
)

func TestParseSchedule(t *testing.T) {
	base := time.Date(2026, 3, 14, 10, 7, 30, 0, time.UTC) // a Saturday
	tests := []struct {
		expr    string
		want    []time.Time // successive firings after base
		wantErr bool
	}{
		{expr: "@every 5m", want: []time.Time{base.Add(5 * time.Minute), base.Add(10 * time.Minute)}},
		{expr: "@every 1h30m", want: []time.Time{base.Add(90 * time.Minute)}},
		{expr: "0 */5 * * * *", want: []time.Time{
			time.Date(2026, 3, 14, 10, 10, 0, 0, time.UTC), time.Date(2026, 3, 14, 10, 15, 0, 0, time.UTC)}},
		{expr: "30 0 4 * * *", want: []time.Time{
			time.Date(2026, 3, 15, 4, 0, 30, 0, time.UTC), time.Date(2026, 3, 16, 4, 0, 30, 0, time.UTC)}},
		{expr: "0 0 0 1 JAN ?", want: []time.Time{time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)}},
		{expr: "0 0 9 ? * MON-FRI", want: []time.Time{
			time.Date(2026, 3, 16, 9, 0, 0, 0, time.UTC), time.Date(2026, 3, 17, 9, 0, 0, 0, time.UTC)}},
		{expr: "0 0 12 * * 7", want: []time.Time{time.Date(2026, 3, 15, 12, 0, 0, 0, time.UTC)}}, // 7 = Sunday
		{expr: "0 0,30 10 * * *", want: []time.Time{time.Date(2026, 3, 14, 10, 30, 0, 0, time.UTC)}},
		{expr: "15/20 * * * * *", want: []time.Time{
			time.Date(2026, 3, 14, 10, 7, 35, 0, time.UTC), time.Date(2026, 3, 14, 10, 7, 55, 0, time.UTC)}},
		{expr: "0 0 0 31 2 *", want: []time.Time{{}}}, // never
		{expr: "@every 0s", wantErr: true},
		{expr: "@every soon", wantErr: true},
		{expr: "*/5 * * * *", wantErr: true}, // five fields: not FC's
		{expr: "60 * * * * *", wantErr: true},
		{expr: "0 ? * * * *", wantErr: true},
		{expr: "0 0 0 L * *", wantErr: true},
		{expr: "CRON_TZ=Asia/Shanghai 0 0 4 1 * *", wantErr: true},
		{expr: "0 0 5-1 * * *", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.expr, func(t *testing.T) {
			s, err := ParseSchedule(tt.expr)
			if tt.wantErr {
				if !errors.Is(err, ErrBadSchedule) {
					t.Fatalf("got %v, want ErrBadSchedule", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			at := base
			for i, w := range tt.want {
				at = s.Next(at)
				if !at.Equal(w) {
					t.Fatalf("firing %d: got %v, want %v", i+1, at, w)
				}
			}
		})
	}
}

// TestTimerMatchesPublishedSample runs s.yaml's reconcile timer on virtual time against the
// echo function: each firing reaches the function wrapped as FC wraps it (the keys and types
// of fc-runtime-go-sdk's README_TIMER.md sample), with the configured payload as a string,
// asynchronously with asyncInvokeConfig's retries, and reaches the onFailure destination only
// when timer destinations are switched on.
func TestTimerMatchesPublishedSample(t *testing.T) {
	spec := project(t)
	sample := decode(t, readSample(t, "timer.json"))
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		name         string
		fail         string
		destinations bool
		wantRuns     int // invocations per firing
		wantRecords  int // onFailure records in all
	}{
		{name: "succeeds", wantRuns: 1},
		{name: "fails, destinations off (FC 2.0 docs)", fail: "reconcile", wantRuns: 3},
		{name: "fails, destinations on", fail: "reconcile", destinations: true, wantRuns: 3, wantRecords: 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dest := &recorder{}
			rt, dir := echoFunction(t, spec, tt.fail, dest)
			clock := NewFakeClock(start)
			tr, err := Start(Options{Function: spec, Target: rt, AccountID: testAccount, Clock: clock,
				Only: []string{"reconcile-timer"}, TimerDestinations: tt.destinations})
			if err != nil {
				t.Fatal(err)
			}
			defer tr.Close()
			ctx := ctxT(t)
			const firings = 2
			for range firings {
				if err := clock.WaitForSleepers(ctx, 1); err != nil {
					t.Fatal(err)
				}
				clock.Advance(5 * time.Minute)
			}
			waitFor(t, "both firings", func() bool { return tr.Stats().TimerFirings == firings })
			if err := rt.Wait(ctx); err != nil {
				t.Fatal(err)
			}
			got := received(t, dir)
			if len(got) != firings*tt.wantRuns {
				t.Fatalf("the function ran %d times, want %d", len(got), firings*tt.wantRuns)
			}
			times := map[string]bool{}
			for _, b := range got {
				if d := shapeDiff("$", sample, decode(t, b)); d != "" {
					t.Fatalf("delivered %s\ndiffers from the published sample: %s", b, d)
				}
				var ev TimerEvent
				if err := json.Unmarshal(b, &ev); err != nil {
					t.Fatal(err)
				}
				if ev.TriggerName != "reconcile-timer" || ev.Payload != `{"action":"reconcile"}` {
					t.Fatalf("got %+v", ev)
				}
				times[ev.TriggerTime] = true
			}
			for _, want := range []string{"2026-01-01T00:05:00Z", "2026-01-01T00:10:00Z"} {
				if !times[want] {
					t.Errorf("no firing at %s: got %v", want, times)
				}
			}
			for _, task := range rt.AsyncTasks() {
				if want := tt.wantRuns - 1; task.AlreadyRetriedTimes != want {
					t.Errorf("task retried %d times, want %d (maxAsyncRetryAttempts)", task.AlreadyRetriedTimes, want)
				}
			}
			if n := dest.len(); n != tt.wantRecords {
				t.Errorf("onFailure got %d records, want %d", n, tt.wantRecords)
			}
		})
	}
}
