package trigger

import (
	"context"
	"errors"
	"testing"

	"github.com/enipool/enipool/localcloud/fcrt"
)

// TestLoadProject renders the repository's s.yaml: variables, shell overrides and the account
// reach the triggers the local cloud runs.
func TestLoadProject(t *testing.T) {
	tests := []struct {
		name      string
		env       map[string]string
		wantName  string
		wantQueue string
		wantDLQ   string
	}{
		{name: "defaults", wantName: "enipool", wantQueue: "enipool-work", wantDLQ: "enipool-dlq"},
		{name: "shell overrides", env: map[string]string{"ENIPOOL_DEPLOY_FUNCTION_NAME": "pool2", "ENIPOOL_DEPLOY_WORK_QUEUE": "w2", "ENIPOOL_DEPLOY_DLQ_QUEUE": "d2"},
			wantName: "pool2", wantQueue: "w2", wantDLQ: "d2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := LoadProject("../../s.yaml", RenderOptions{AccountID: testAccount, Getenv: func(k string) (string, bool) {
				v, ok := tt.env[k]
				return v, ok
			}})
			if err != nil {
				t.Fatal(err)
			}
			fn, ok := p.Function(tt.wantName)
			if !ok {
				t.Fatalf("no function %s in %+v", tt.wantName, p.Functions)
			}
			if fn.Async == nil || fn.Async.MaxAsyncRetryAttempts == nil || *fn.Async.MaxAsyncRetryAttempts != 2 || fn.Async.MaxAsyncEventAgeInSeconds != 3600 {
				t.Errorf("asyncInvokeConfig %+v", fn.Async)
			}
			if q, err := QueueFromARN(fn.Async.DestinationConfig.OnFailure.Destination); err != nil || q != tt.wantDLQ {
				t.Errorf("onFailure queue %q, %v; want %s", q, err, tt.wantDLQ)
			}
			kinds := map[string]string{}
			for _, tr := range fn.Triggers {
				switch {
				case tr.Timer != nil:
					kinds[tr.Name] = "timer " + tr.Timer.CronExpression + " " + tr.Timer.Payload
				case tr.EventBridge != nil:
					eb := tr.EventBridge
					kinds[tr.Name] = eb.EventSourceConfig.EventSourceType + " " + eb.EventRuleFilterPattern
					if src := eb.EventSourceConfig.EventSourceParameters.SourceMNSParameters; src != nil {
						if src.QueueName != tt.wantQueue {
							t.Errorf("stream queue %s, want %s", src.QueueName, tt.wantQueue)
						}
						if q, err := QueueFromARN(eb.RunOptions.DeadLetterQueue.Arn); err != nil || q != tt.wantDLQ {
							t.Errorf("stream dead-letter queue %q, %v", q, err)
						}
						// One push at a time leaves the attach quota idle while a batch waits
						// for its slowest attach (s.yaml's comment has the bench's figures).
						if eb.RunOptions.MaximumTasks < 2 {
							t.Errorf("stream maximumTasks %d: want batches pushed in parallel", eb.RunOptions.MaximumTasks)
						}
					}
				}
			}
			want := map[string]string{
				"reconcile-timer":    `timer @every 5m {"action":"reconcile"}`,
				"work-queue":         `MNS {"source":["MNS-` + tt.wantName + `-work-queue"]}`,
				"ecs-state-change":   `Default {"source":["acs.ecs"],"type":["ecs:Instance:StateChange"]}`,
				"ess-lifecycle-hook": `Default {"source":["acs.ess"],"type":["ess:LifecycleHook:ScaleOut","ess:LifecycleHook:ScaleIn"]}`,
			}
			for k, v := range want {
				if kinds[k] != v {
					t.Errorf("trigger %s = %q, want %q", k, kinds[k], v)
				}
			}
		})
	}
}

func TestParseProjectErrors(t *testing.T) {
	tests := map[string]string{
		"not yaml":     "a: [",
		"unknown form": "resources:\n  f:\n    component: fc3\n    props:\n      functionName: ${path('./')}\n",
		"missing var":  "resources:\n  f:\n    component: fc3\n    props:\n      functionName: ${vars.nope}\n",
		"bad trigger":  "resources:\n  f:\n    component: fc3\n    props:\n      functionName: f\n      triggers:\n        - triggerName: t\n          triggerType: timer\n          triggerConfig: 3\n",
	}
	for name, doc := range tests {
		if _, err := ParseProject([]byte(doc), RenderOptions{}); !errors.Is(err, ErrInvalidProject) {
			t.Errorf("%s: got %v, want ErrInvalidProject", name, err)
		}
	}
	for _, arn := range []string{"acs:fc:cn-hangzhou:1:functions/f", "acs:mns:cn-hangzhou:1:/topics/t", "acs:mns:cn-hangzhou:1:/queues/"} {
		if _, err := QueueFromARN(arn); !errors.Is(err, ErrInvalidProject) {
			t.Errorf("QueueFromARN(%s) = %v, want ErrInvalidProject", arn, err)
		}
	}
}

// TestStartRefuses: a trigger the local cloud cannot run faithfully is an error at Start, not
// a trigger that silently never fires.
func TestStartRefuses(t *testing.T) {
	spec := project(t)
	edit := func(name string, f func(*TriggerSpec)) FunctionSpec {
		out := spec
		out.Triggers = nil
		for _, tr := range spec.Triggers {
			if tr.Name == name {
				cp := tr
				if tr.Timer != nil {
					tm := *tr.Timer
					cp.Timer = &tm
				}
				if tr.EventBridge != nil {
					eb := *tr.EventBridge
					cp.EventBridge = &eb
				}
				f(&cp)
				out.Triggers = append(out.Triggers, cp)
			}
		}
		return out
	}
	tests := []struct {
		name    string
		fn      FunctionSpec
		queues  bool
		wantErr error
	}{
		{"bad cron", edit("reconcile-timer", func(tr *TriggerSpec) { tr.Timer.CronExpression = "*/5 * * * *" }), true, ErrBadSchedule},
		{"bad pattern", edit("ecs-state-change", func(tr *TriggerSpec) { tr.EventBridge.EventRuleFilterPattern = `{"source":"acs.ecs"}` }), true, ErrBadPattern},
		{"stream without MNS", edit("work-queue", func(*TriggerSpec) {}), false, ErrInvalidProject},
		{"unemulated source", edit("ecs-state-change", func(tr *TriggerSpec) { tr.EventBridge.EventSourceConfig.EventSourceType = "Kafka" }), true, ErrInvalidProject},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := Options{Function: tt.fn, Target: nopTarget{}, AccountID: testAccount}
			if tt.queues {
				o.Queues = newQueues(t)
			}
			tr, err := Start(o)
			if !errors.Is(err, tt.wantErr) {
				if tr != nil {
					_ = tr.Close()
				}
				t.Fatalf("Start = %v, want %v", err, tt.wantErr)
			}
		})
	}
}

// nopTarget is a Target that must never be invoked.
type nopTarget struct{}

func (nopTarget) Invoke(context.Context, []byte) (*fcrt.Result, error) {
	return nil, errors.New("nopTarget invoked")
}

func (nopTarget) InvokeAsyncWith([]byte, fcrt.AsyncOptions) string { return "" }
