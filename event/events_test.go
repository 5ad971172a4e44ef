package event_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/enipool/enipool/event"
)

const eventsDir = "../events"

func readEvent(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(eventsDir, name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// element returns the i-th element of the JSON array in file name.
func element(t *testing.T, name string, i int) string {
	var elems []json.RawMessage
	if err := json.Unmarshal(readEvent(t, name), &elems); err != nil {
		t.Fatal(err)
	}
	return string(elems[i])
}

// requestPayload returns the requestPayload string of the FC record in name.
func requestPayload(t *testing.T, name string) string {
	var rec struct {
		RequestPayload string `json:"requestPayload"`
	}
	if err := json.Unmarshal(readEvent(t, name), &rec); err != nil {
		t.Fatal(err)
	}
	return rec.RequestPayload
}

// TestSampleEvents decodes every file in events/ and checks every field, so
// the samples and the decoder cannot drift apart.
func TestSampleEvents(t *testing.T) {
	const (
		i4, i5, i6 = "i-bp1demo00000000004", "i-bp1demo00000000005", "i-bp1demo00000000006"
		token      = "9C2E9DA7-F794-449A-ACF6-CEE24444F7BB"
	)
	scaleOut := &event.Lifecycle{HookID: "ash-bp1demo0000000001", Token: token, Transition: "SCALE_OUT",
		DefaultResult: "CONTINUE", ScalingGroupID: "asg-bp1demo0000000001", ScalingActivityID: "asa-bp1demo0000000001", InstanceIDs: []string{i4, i5}}
	scaleOutMNS := &event.Lifecycle{HookID: "ash-bp1demo0000000001", Token: "3F1B7C2D-0E4A-4B8C-9D6E-1A2B3C4D5E6F", Transition: "SCALE_OUT",
		DefaultResult: "CONTINUE", ScalingGroupID: "asg-bp1demo0000000001", ScalingActivityID: "asa-bp1demo0000000002", InstanceIDs: []string{i4}}
	scaleIn := &event.Lifecycle{HookID: "ash-bp1demo0000000002", Token: "B7E1C0A2-5D3F-4E6A-8B9C-0D1E2F3A4B5C", Transition: "SCALE_IN",
		DefaultResult: "CONTINUE", ScalingGroupID: "asg-bp1demo0000000001", ScalingActivityID: "asa-bp1demo0000000003", InstanceIDs: []string{i4}}
	direct := func(id string) want {
		return want{Kind: event.KindDirect, InstanceID: id, Region: hz, Source: "direct"}
	}
	action := func(a event.Action, region string) want {
		return want{Kind: event.KindAction, InstanceID: a.InstanceID, Region: region, Source: "direct", Action: &a}
	}
	files := map[string][]want{
		"ecs-running.json": {{Kind: event.KindECSStateChange, InstanceID: i1, State: "Running", Region: hz, Source: "acs.ecs", EventID: "7a1c5e2b-3f4d-4c6e-9b8a-0d1e2f3a4b01"}},
		"ecs-stopped.json": {{Kind: event.KindECSStateChange, InstanceID: i2, State: "Stopped", Region: hz, Source: "acs.ecs", EventID: "7a1c5e2b-3f4d-4c6e-9b8a-0d1e2f3a4b02"}},
		"ecs-notification-mns.json": {{Kind: event.KindECSNotification, InstanceID: i3, State: "Running", Region: hz, Source: mq,
			EventID: "C6DB60D1574661357FA2272774450003"}},
		"ess-scale-out.json": {
			{Kind: event.KindLifecycle, InstanceID: i4, Region: hz, Source: "acs.ess", EventID: "0d8d5a3c-1b2e-4f60-8a7b-9c0d1e2f3a01", Lifecycle: scaleOut},
			{Kind: event.KindLifecycle, InstanceID: i5, Region: hz, Source: "acs.ess", EventID: "0d8d5a3c-1b2e-4f60-8a7b-9c0d1e2f3a01", Lifecycle: scaleOut},
		},
		"ess-scale-out-mns.json": {{Kind: event.KindLifecycle, InstanceID: i4, Region: hz, Source: mq, EventID: "C6DB60D1574661357FA2272774450004", Lifecycle: scaleOutMNS}},
		"ess-scale-in.json":      {{Kind: event.KindLifecycle, InstanceID: i4, Region: hz, Source: "acs.ess", EventID: "0d8d5a3c-1b2e-4f60-8a7b-9c0d1e2f3a02", Lifecycle: scaleIn}},
		"mns-single.json":        {{Kind: event.KindDirect, InstanceID: i1, Region: hz, Source: mq, EventID: "C6DB60D1574661357FA2272774450001"}},
		"mns-batch.json": {
			{Kind: event.KindDirect, InstanceID: i2, Region: hz, Source: mq, EventID: "C6DB60D1574661357FA2272774450012", Raw: element(t, "mns-batch.json", 0)},
			{Kind: event.KindECSStateChange, InstanceID: i3, State: "Running", Region: hz, Source: mq, EventID: "C6DB60D1574661357FA2272774450013", Raw: element(t, "mns-batch.json", 1)},
			{Kind: event.KindECSNotification, InstanceID: i6, State: "Running", Region: hz, Source: mq, EventID: "C6DB60D1574661357FA2272774450016", Raw: element(t, "mns-batch.json", 2)},
		},
		"direct.json":      {direct(i1)},
		"direct-list.json": {direct(i1), direct(i2), direct(i3)},
		"deadletter-redrive.json": {{Kind: event.KindECSStateChange, InstanceID: i1, State: "Running", Region: hz, Source: "deadletter",
			EventID: "7a1c5e2b-3f4d-4c6e-9b8a-0d1e2f3a4b01", Raw: string(readEvent(t, "ecs-running.json")),
			Redrive: &event.Redrive{InstanceID: i1, RedriveCount: 1, PreviousAction: "retries-exhausted",
				PreviousError:  "ServiceUnavailable: The request has failed due to a temporary failure of the server.",
				EnvelopeSource: "acs.ecs", EnvelopeEventID: "7a1c5e2b-3f4d-4c6e-9b8a-0d1e2f3a4b01",
				FunctionRequestID: "1-6631a2b4-0f3c2d1e4b5a69788a9b0c1d", Attempts: 5}}},
		"fc-destination.json": {{Kind: event.KindDirect, InstanceID: i3, Region: hz, Source: "fc-destination", Raw: requestPayload(t, "fc-destination.json"),
			Redrive: &event.Redrive{FCDestination: true, RedriveCount: 1, PreviousAction: "UnhandledInvocationError",
				PreviousError:     "handler: dead-letter queue unavailable: ServiceUnavailable",
				FunctionRequestID: "1-6631a3dc-2b4c6d8e0f1a2b3c4d5e6f70", Attempts: 3}}},
		"action-status.json":    {action(event.Action{Name: event.ActionStatus, Pool: "web"}, "")},
		"action-reconcile.json": {action(event.Action{Name: event.ActionReconcile, Pool: "web", Max: 10}, "")},
		"action-redrive.json":   {action(event.Action{Name: event.ActionRedrive, Max: 10}, "")},
		"action-detach.json":    {action(event.Action{Name: event.ActionDetach, InstanceID: i3}, hz)},
		"timer-reconcile.json": {{Kind: event.KindAction, Source: "timer:reconcile-timer", EventID: "reconcile-timer@2024-05-01T10:05:00Z",
			Action: &event.Action{Name: event.ActionReconcile}}},
	}
	names, err := filepath.Glob(filepath.Join(eventsDir, "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	if len(names) != len(files) {
		t.Errorf("events/ holds %d JSON files, the test knows %d", len(names), len(files))
	}
	for _, path := range names {
		name := filepath.Base(path)
		t.Run(name, func(t *testing.T) {
			wants, ok := files[name]
			if !ok {
				t.Fatalf("no expectation for events/%s: add one", name)
			}
			in := readEvent(t, name)
			check(t, in, event.Decode(in, event.Options{}), wants)
		})
	}
}
