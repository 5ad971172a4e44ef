package e2e

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/aliyun/fc-runtime-go-sdk/events"

	"github.com/enipool/enipool/cloud"
	"github.com/enipool/enipool/engine"
	"github.com/enipool/enipool/localcloud/world"
)

// timerPayload is what FC's timer trigger delivers (events.TimerEvent of fc-runtime-go-sdk):
// the configured payload string wrapped with the trigger's name and time.
func timerPayload(t *testing.T, payload string) string {
	t.Helper()
	when, name := "2024-05-01T10:05:00Z", "reconcile-timer"
	b, err := json.Marshal(events.TimerEvent{TriggerTime: &when, TriggerName: &name, Payload: &payload})
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// The reconcile timer of s.yaml runs reconcile, through the built function. Fails on ca38816:
// the wrapper was refused as enipool.UnsupportedEvent and dead-lettered, the lost instance kept
// no ENI ("outcome dead-lettered (cannot handle the payload: unsupported event: object with
// keys [payload triggerName triggerTime] ...)").
func TestTimerTrigger(t *testing.T) {
	t.Parallel()
	const lost = "i-bp1timer0000001"
	t.Run("reconcile", func(t *testing.T) {
		b := newBed(t, newWorld(t, spec{instances: []world.Instance{inst(lost, zoneH)}, enis: poolENIs("t", zoneH, 2)}), bedOptions{})
		resp := b.mustInvoke(timerPayload(t, `{"action":"reconcile"}`))
		if len(resp.Results) == 0 || resp.Results[0].Outcome != engine.OutcomeCompleted {
			t.Fatalf("results %+v, want the reconcile completed first", resp.Results)
		}
		if got := b.inUse(lost); len(got) != 1 {
			t.Errorf("the instance the reconcile should repair holds %v", got)
		}
		if dl := b.deadLetters(); len(dl) != 0 {
			t.Errorf("%d dead letters, want none: %+v", len(dl), dl[0])
		}
	})
	t.Run("a payload that is no event is dead-lettered with the raw event", func(t *testing.T) {
		b := newBed(t, newWorld(t, spec{}), bedOptions{})
		raw := timerPayload(t, "TestPayload")
		resp := b.mustInvoke(raw)
		if len(resp.Results) != 1 || resp.Results[0].Outcome != engine.OutcomeDeadLettered || resp.Results[0].Code != cloud.CodeUnsupported {
			t.Fatalf("results %+v, want one dead letter %s", resp.Results, cloud.CodeUnsupported)
		}
		dl := b.deadLetters()
		if len(dl) != 1 || string(dl[0].Event) != raw || !strings.HasPrefix(dl[0].Source, "timer") {
			t.Fatalf("dead letters %+v, want one holding the timer event verbatim", dl)
		}
	})
}
