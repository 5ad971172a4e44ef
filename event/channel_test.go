package event_test

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/enipool/enipool/event"
)

// mnsWrap puts body in an MNS queue trigger CloudEvent, as a sender with mns:SendMessage on
// the work queue gets it delivered.
func mnsWrap(t *testing.T, body string) string {
	t.Helper()
	b, err := json.Marshal(map[string]any{
		"id": "m-1", "source": "MNS-enipool-work", "specversion": "1.0", "type": "mns:Queue:SendMessage",
		"subject":         "acs:mns:cn-hangzhou:1234567890123456:queues/enipool-work",
		"aliyunaccountid": "1234567890123456",
		"data":            map[string]string{"messageId": "M1", "messageBody": body},
	})
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func timerWrap(t *testing.T, payload string) string {
	t.Helper()
	b, err := json.Marshal(map[string]string{"triggerTime": "2024-05-01T02:00:00Z", "triggerName": "reconcile", "payload": payload})
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestChannel: the channel is the outermost carrier, whatever the event inside claims. Before
// it, an action inside a work-queue message decoded like one invoked directly (issue 14, 1).
func TestChannel(t *testing.T) {
	detach := `{"action":"detach","instanceId":"i-bp1demo00000000001"}`
	running := string(readEvent(t, "ecs-running.json"))
	envelope := string(readEvent(t, "deadletter-redrive.json"))
	tests := []struct {
		name    string
		in      string
		channel event.Channel
		letter  bool
	}{
		{"direct action", detach, event.ChannelDirect, false},
		{"direct instance", `{"instanceId":"i-bp1demo00000000001"}`, event.ChannelDirect, false},
		{"EventBridge ECS event", running, event.ChannelEventBridge, false},
		{"EventBridge lifecycle event", string(readEvent(t, "ess-scale-out.json")), event.ChannelEventBridge, false},
		{"action in a queue message", mnsWrap(t, detach), event.ChannelQueue, false},
		{"ECS CloudEvent in a queue message", mnsWrap(t, running), event.ChannelQueue, false},
		{"timer in a queue message", mnsWrap(t, timerWrap(t, `{"action":"reconcile"}`)), event.ChannelQueue, false},
		{"queue sample", string(readEvent(t, "mns-single.json")), event.ChannelQueue, false},
		{"queue batch", string(readEvent(t, "mns-batch.json")), event.ChannelQueue, false},
		{"timer", timerWrap(t, `{"action":"reconcile"}`), event.ChannelTimer, false},
		{"timer sample", string(readEvent(t, "timer-reconcile.json")), event.ChannelTimer, false},
		{"envelope invoked directly", envelope, event.ChannelDirect, true},
		{"envelope in a queue message", mnsWrap(t, envelope), event.ChannelQueue, true},
		{"FC record invoked directly", string(readEvent(t, "fc-destination.json")), event.ChannelDirect, true},
		{"unreadable", `{"instanceId":`, event.ChannelDirect, false},
		{"unreadable in a queue message", mnsWrap(t, `{"instanceId":`), event.ChannelQueue, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			reqs := event.Decode([]byte(tt.in), event.Options{})
			for i, r := range reqs {
				if r.Channel != tt.channel {
					t.Errorf("request %d: Channel %q, want %q", i, r.Channel, tt.channel)
				}
				if got := r.Redrive != nil; got != tt.letter && r.Err == nil {
					t.Errorf("request %d: from a letter %v, want %v", i, got, tt.letter)
				}
			}
		})
	}
}

// TestAccounts: every account an event and its carrier name, from every field their forms
// have for it. The cases marked "beside" fail on a0bb83d, which kept only the first valid
// field (aliyunaccountid before subject, userId before resourceArn, an inner event's before
// its queue message's), so a foreign ARN next to a matching id was never compared.
func TestAccounts(t *testing.T) {
	const acc, other = "1234567890123456", "6543210987654321"
	running := string(readEvent(t, "ecs-running.json"))
	notification := func(userID, arnAccount string) string {
		return `{"userId":"` + userID + `","regionId":"cn-hangzhou","resourceArn":"acs:ess:cn-hangzhou:` + arnAccount + `:scalinggroup/asg-1",` +
			`"content":{"lifecycleHookId":"ash-1","lifecycleActionToken":"tok-1","lifecycleTransition":"SCALE_OUT","instanceIds":["i-bp1demo00000000001"]}}`
	}
	foreignSubject := strings.Replace(running, `"acs:ecs:cn-hangzhou:`+acc+`:instance/`, `"acs:ecs:cn-hangzhou:`+other+`:instance/`, 1)
	if foreignSubject == running {
		t.Fatal("ecs-running.json's subject no longer names the account: update this test")
	}
	tests := []struct {
		name string
		in   string
		want []string
	}{
		{"EventBridge ECS event", running, []string{acc}},
		{"ECS notification in a queue message", string(readEvent(t, "ecs-notification-mns.json")), []string{acc}},
		{"ESS notification in a queue message", string(readEvent(t, "ess-scale-out-mns.json")), []string{acc}},
		{"notification of another account", mnsWrap(t, notification(other, other)), []string{other, acc}},
		{"direct names none", `{"instanceId":"i-bp1demo00000000001"}`, nil},
		{"direct in a queue message takes the queue's", mnsWrap(t, `{"instanceId":"i-bp1demo00000000001"}`), []string{acc}},
		{"not an account id", strings.Replace(running, `"aliyunaccountid": "`+acc, `"aliyunaccountid": "x`+acc, 1), []string{acc}}, // from the subject ARN
		{"beside: a foreign subject ARN beside a matching aliyunaccountid", foreignSubject, []string{acc, other}},
		{"beside: a foreign original account", strings.Replace(running, `"aliyunaccountid": "`+acc+`"`,
			`"aliyunaccountid": "`+acc+`", "aliyunoriginalaccountid": "`+other+`"`, 1), []string{acc, other}},
		{"beside: a foreign resourceArn beside a matching userId", mnsWrap(t, notification(acc, other)), []string{acc, other}},
		{"beside: an event of another account in this account's queue message", mnsWrap(t, foreignSubject), []string{acc, other}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			reqs := event.Decode([]byte(tt.in), event.Options{})
			if len(reqs) == 0 {
				t.Fatal("no request")
			}
			for i, r := range reqs {
				if r.Err != nil {
					t.Fatalf("request %d: %v", i, r.Err)
				}
				got := slices.Sorted(slices.Values(r.Accounts))
				if want := slices.Sorted(slices.Values(tt.want)); !slices.Equal(got, want) {
					t.Errorf("request %d: Accounts %q, want %q", i, got, want)
				}
			}
		})
	}
}

// TestNoBidiInLabels: a source or event id carrying a bidirectional override is not copied
// into a Request, where it would reach log lines and dead letters (issue 14, 8: printable let
// them through).
func TestNoBidiInLabels(t *testing.T) {
	for _, r := range []string{"\u202e", "\u2066", "\u200f", "\u061c"} {
		in := strings.Replace(string(readEvent(t, "ecs-running.json")), `"id": "7a1c5e2b`, `"id": "`+r+`7a1c5e2b`, 1)
		in = strings.Replace(in, `"source": "acs.ecs"`, `"source": "acs.ecs`+r+`"`, 1)
		for _, req := range event.Decode([]byte(in), event.Options{}) {
			if strings.Contains(req.EventID, r) || strings.Contains(req.Source, r) {
				t.Errorf("%U reached the request: source %q, event id %q", []rune(r)[0], req.Source, req.EventID)
			}
		}
	}
}

// TestKeysQuotedInErrors: the keys of an unknown object reach the error text quoted, so a key
// holding a newline or a terminal escape cannot forge a log line or recolour a terminal
// (issue 14, 8: they were copied raw).
func TestKeysQuotedInErrors(t *testing.T) {
	in := "{\"a\\nlevel=ERROR msg=forged\":1,\"\\u001b[31mred\":2,\"\\u202eevil\":3}"
	reqs := event.Decode([]byte(in), event.Options{})
	if len(reqs) != 1 || reqs[0].Err == nil {
		t.Fatalf("want one refused request, got %+v", reqs)
	}
	msg := reqs[0].Err.Error()
	for _, raw := range []string{"\n", "\x1b", "\u202e"} {
		if strings.Contains(msg, raw) {
			t.Errorf("error text %q carries %q raw", msg, raw)
		}
	}
	if !strings.Contains(msg, `"a\nlevel=ERROR msg=forged"`) {
		t.Errorf("error text %q does not name the key quoted", msg)
	}
}
