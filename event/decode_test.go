package event_test

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/enipool/enipool/deadletter"
	"github.com/enipool/enipool/event"
)

const (
	i1  = "i-bp1demo00000000001"
	i2  = "i-bp1demo00000000002"
	i3  = "i-bp1demo00000000003"
	hz  = "cn-hangzhou"
	acc = "1234567890123456"
	mq  = "mns:enipool-work"
)

// ecsEvent is an EventBridge ECS state change with the given data.
func ecsEvent(extra, data string) string {
	return `{"id":"ev-1","source":"acs.ecs","specversion":"1.0","type":"ecs:Instance:StateChange",` + extra +
		`"time":"2024-05-01T10:00:01+08:00","aliyunpublishtime":"2020-11-19T21:04:42.179PRC","data":` + data + `}`
}

// mnsEvent is an MNS queue trigger CloudEvent; body is the JSON value of
// messageBody (usually a quoted string).
func mnsEvent(msgID, body string) string {
	return `{"id":"ce-` + msgID + `","source":"MNS-enipool-work-queue","specversion":"1.0","type":"mns:Queue:SendMessage",` +
		`"subject":"acs:mns:cn-hangzhou:` + acc + `:queues/enipool-work","time":"2021-04-08T06:28:17.093Z",` +
		`"aliyunregionid":"cn-hangzhou","data":{"requestId":"req-` + msgID + `","messageId":"` + msgID + `","messageBody":` + body + `}}`
}

func quote(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

func hookContent(transition, ids string) string {
	return `{"lifecycleHookId":"ash-bp1hook","lifecycleActionToken":"9C2E9DA7-F794-449A-ACF6-CEE24444F7BB",` +
		`"lifecycleHookName":"attach","scalingGroupId":"asg-bp1group","scalingGroupName":"web-asg",` +
		`"lifecycleTransition":"` + transition + `","defaultResult":"CONTINUE","requestId":"r","scalingActivityId":"asa-1",` +
		`"instanceIds":` + ids + `}`
}

func hookEvent(typ, data string) string {
	return `{"id":"hook-1","source":"acs.ess","specversion":"1.0","type":"` + typ + `","aliyunregionid":"cn-hangzhou",` +
		`"aliyunpublishtime":"2024-05-01T10:05:00.000PRC","data":` + data + `}`
}

func lifecycle(transition string, ids ...string) *event.Lifecycle {
	return &event.Lifecycle{HookID: "ash-bp1hook", Token: "9C2E9DA7-F794-449A-ACF6-CEE24444F7BB",
		Transition: transition, DefaultResult: "CONTINUE", ScalingGroupID: "asg-bp1group", ScalingActivityID: "asa-1", InstanceIDs: ids}
}

const notification = `{"ver":"1.0","id":"2256A988-0B26-4E2B-820A-8A0000000001","product":"ECS",` +
	`"resourceId":"acs:ecs:cn-hangzhou:` + acc + `:instance/` + i1 + `","level":"INFO","name":"Instance:StateChange",` +
	`"userId":"` + acc + `","eventTime":"20190409T121826.922+0800","regionId":"cn-hangzhou",` +
	`"content":{"resourceId":"` + i1 + `","resourceType":"ALIYUN::ECS::Instance","state":"Running"}}`

func envelope(t *testing.T, e deadletter.Envelope) string {
	t.Helper()
	b, err := deadletter.Marshal(&e)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

type decodeCase struct {
	name  string
	in    string
	opts  event.Options
	wants []want
}

func runCases(t *testing.T, cases []decodeCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := event.Decode([]byte(tc.in), tc.opts)
			check(t, []byte(tc.in), got, tc.wants)
		})
	}
}

func TestDecodeECS(t *testing.T) {
	running := want{Kind: event.KindECSStateChange, InstanceID: i1, State: "Running", Region: hz, Source: "acs.ecs", EventID: "ev-1"}
	with := func(w want, f func(*want)) want { f(&w); return w }
	arn := "acs:ecs:cn-hangzhou:" + acc + ":instance/" + i1
	runCases(t, []decodeCase{
		{name: "flat data", in: ecsEvent(`"aliyunregionid":"cn-hangzhou",`, `{"resourceId":"`+i1+`","resourceType":"ALIYUN::ECS::Instance","state":"Running"}`),
			wants: []want{running}},
		{name: "data.content, state case", in: ecsEvent(`"aliyunregionid":"cn-hangzhou",`, `{"content":{"resourceId":"`+i1+`","state":"RUNNING"}}`),
			wants: []want{running}},
		{name: "data.instanceId", in: ecsEvent(`"aliyunregionid":"cn-hangzhou",`, `{"instanceId":"`+i1+`","state":"running"}`),
			wants: []want{running}},
		{name: "subject ARN gives id and region", in: ecsEvent(`"subject":"`+arn+`",`, `{"state":"Running"}`),
			wants: []want{running}},
		{name: "subject path", in: ecsEvent(`"subject":"instance/`+i1+`","aliyunregionid":"cn-hangzhou",`, `{"state":"Running"}`),
			wants: []want{running}},
		{name: "resourceId ARN", in: ecsEvent(`"resourceId":"`+arn+`",`, `{"state":"Running"}`),
			wants: []want{running}},
		{name: "data.resourceId ARN", in: ecsEvent(``, `{"resourceId":"`+arn+`","state":"Running"}`),
			wants: []want{running}},
		{name: "region from a later ARN", in: ecsEvent(`"subject":"`+arn+`",`, `{"resourceId":"`+i1+`","state":"Running"}`),
			wants: []want{running}},
		{name: "no region", in: ecsEvent(``, `{"resourceId":"`+i1+`","state":"Stopped"}`),
			wants: []want{with(running, func(w *want) { w.Region, w.State = "", "Stopped" })}},
		{name: "other states returned", in: ecsEvent(`"aliyunregionid":"cn-hangzhou",`, `{"resourceId":"`+i1+`","state":"deleted"}`),
			wants: []want{with(running, func(w *want) { w.State = "Deleted" })}},
		{name: "unknown state capitalised", in: ecsEvent(`"aliyunregionid":"cn-hangzhou",`, `{"resourceId":"`+i1+`","state":"migrating"}`),
			wants: []want{with(running, func(w *want) { w.State = "Migrating" })}},
		{name: "odd time fields", in: `{"id":"ev-1","source":"acs.ecs","specversion":"1.0","type":"ecs:Instance:StateChange","aliyunregionid":"cn-hangzhou",` +
			`"time":12,"aliyunpublishtime":{"x":"PRC"},"data":{"resourceId":"` + i1 + `","state":"Running"}}`,
			wants: []want{running}},
		{name: "own source kept", in: strings.Replace(ecsEvent(`"aliyunregionid":"cn-hangzhou",`, `{"resourceId":"`+i1+`","state":"Running"}`), `"acs.ecs"`, `"custom.bus"`, 1),
			wants: []want{with(running, func(w *want) { w.Source = "custom.bus" })}},
		{name: "CloudMonitor notification", in: notification,
			wants: []want{{Kind: event.KindECSNotification, InstanceID: i1, State: "Running", Region: hz, Source: "acs.ecs", EventID: "2256A988-0B26-4E2B-820A-8A0000000001"}}},
		{name: "notification, id from ARN", in: strings.Replace(notification, `"resourceId":"`+i1+`",`, ``, 1),
			wants: []want{{Kind: event.KindECSNotification, InstanceID: i1, State: "Running", Region: hz, Source: "acs.ecs", EventID: "2256A988-0B26-4E2B-820A-8A0000000001"}}},

		{name: "no data", in: `{"type":"ecs:Instance:StateChange","id":"ev-1"}`,
			wants: []want{{Err: event.ErrMalformed, ErrText: "no data"}}},
		{name: "data not an object", in: ecsEvent(``, `"Running"`),
			wants: []want{{Err: event.ErrMalformed, ErrText: "data must be an object"}}},
		{name: "no state", in: ecsEvent(``, `{"resourceId":"`+i1+`"}`),
			wants: []want{{Err: event.ErrMalformed, ErrText: "no instance state"}}},
		{name: "bad state", in: ecsEvent(``, `{"resourceId":"`+i1+`","state":"Run ning"}`),
			wants: []want{{Err: event.ErrMalformed, ErrText: "data.state"}}},
		{name: "no instance", in: ecsEvent(``, `{"state":"Running"}`),
			wants: []want{{Err: event.ErrMalformed, ErrText: "no instance id"}}},
		{name: "bad instance id named", in: ecsEvent(``, `{"resourceId":"i-BP1","state":"Running"}`),
			wants: []want{{Err: event.ErrInvalidID, ErrText: `"i-BP1" in data.resourceId`}}},
		{name: "present bad id is not skipped", in: ecsEvent(`"subject":"`+arn+`",`, `{"resourceId":"i-","state":"Running"}`),
			wants: []want{{Err: event.ErrInvalidID, ErrText: "data.resourceId"}}},
		{name: "NUL in id", in: ecsEvent(``, `{"resourceId":"i-bp1\u0000x","state":"Running"}`),
			wants: []want{{Err: event.ErrInvalidID}}},
		{name: "id too long", in: ecsEvent(``, `{"resourceId":"i-`+strings.Repeat("a", 65)+`","state":"Running"}`),
			wants: []want{{Err: event.ErrInvalidID}}},
		{name: "ARN of another service", in: ecsEvent(`"subject":"acs:mns:cn-hangzhou:1:queues/q",`, `{"state":"Running"}`),
			wants: []want{{Err: event.ErrInvalidID, ErrText: "subject"}}},
		{name: "ARN of another resource", in: ecsEvent(``, `{"resourceId":"acs:ecs:cn-hangzhou:1:eni/eni-bp1x","state":"Running"}`),
			wants: []want{{Err: event.ErrInvalidID, ErrText: "not an ECS instance ARN"}}},
		{name: "bad region", in: ecsEvent(`"aliyunregionid":"CN_HANGZHOU",`, `{"resourceId":"`+i1+`","state":"Running"}`),
			wants: []want{{Err: event.ErrInvalidID, ErrText: `region "CN_HANGZHOU" in aliyunregionid`}}},
		{name: "number for id", in: ecsEvent(``, `{"resourceId":12345,"instanceId":"`+i1+`","state":"Running"}`),
			wants: []want{{Err: event.ErrMalformed, ErrText: "data.resourceId must be a string, got a number"}}},
		{name: "number for state", in: ecsEvent(``, `{"resourceId":"`+i1+`","state":1}`),
			wants: []want{{Err: event.ErrMalformed, ErrText: "data.state must be a string"}}},
		{name: "number for type", in: `{"type":7,"data":{}}`,
			wants: []want{{Err: event.ErrMalformed, ErrText: "type must be a string"}}},
		{name: "other ECS event type", in: `{"id":"x","source":"acs.ecs","specversion":"1.0","type":"ecs:Instance:PreemptibleInstanceInterruption","data":{}}`,
			wants: []want{{Source: "acs.ecs", Err: event.ErrUnsupported, ErrText: `CloudEvent type "ecs:Instance:PreemptibleInstanceInterruption"`}}},
		{name: "other notification", in: strings.Replace(notification, "Instance:StateChange", "Instance:PreemptibleInstanceInterruption", 1),
			wants: []want{{Err: event.ErrUnsupported, ErrText: "Instance:PreemptibleInstanceInterruption"}}},
		{name: "notification without state", in: strings.Replace(notification, `,"state":"Running"`, ``, 1),
			wants: []want{{Err: event.ErrMalformed, ErrText: "content.state"}}},
	})
}

func TestDecodeLifecycle(t *testing.T) {
	out := lifecycle(event.TransitionScaleOut, i1, i2)
	note := `{"userId":"` + acc + `","regionId":"cn-hangzhou","resourceArn":"acs:ess:cn-hangzhou:` + acc + `:scalinggroup/asg-bp1group","content":` +
		hookContent("SCALE_OUT", `["`+i1+`"]`) + `}`
	mnsNote := mnsEvent("M1", quote(b64(note)))
	one := lifecycle(event.TransitionScaleOut, i1)
	in := lifecycle(event.TransitionScaleIn, i2)
	runCases(t, []decodeCase{
		{name: "EventBridge scale out, two instances", in: hookEvent("ess:LifecycleHook:ScaleOut", hookContent("SCALE_OUT", `["`+i1+`","`+i2+`"]`)),
			wants: []want{
				{Kind: event.KindLifecycle, InstanceID: i1, Region: hz, Source: "acs.ess", EventID: "hook-1", Lifecycle: out},
				{Kind: event.KindLifecycle, InstanceID: i2, Region: hz, Source: "acs.ess", EventID: "hook-1", Lifecycle: out},
			}},
		{name: "EventBridge scale in", in: hookEvent("ess:LifecycleHook:ScaleIn", hookContent("SCALE_IN", `["`+i2+`"]`)),
			wants: []want{{Kind: event.KindLifecycle, InstanceID: i2, Region: hz, Source: "acs.ess", EventID: "hook-1", Lifecycle: in}}},
		{name: "transition from the type", in: hookEvent("ess:LifecycleHook:ScaleIn", strings.Replace(hookContent("", `["`+i2+`"]`), `"lifecycleTransition":"",`, ``, 1)),
			wants: []want{{Kind: event.KindLifecycle, InstanceID: i2, Region: hz, Source: "acs.ess", EventID: "hook-1", Lifecycle: in}}},
		{name: "data.content", in: hookEvent("ess:LifecycleHook:ScaleOut", `{"content":`+hookContent("scale_out", `["`+i1+`"]`)+`}`),
			wants: []want{{Kind: event.KindLifecycle, InstanceID: i1, Region: hz, Source: "acs.ess", EventID: "hook-1", Lifecycle: one}}},
		{name: "duplicate instances once", in: hookEvent("ess:LifecycleHook:ScaleOut", hookContent("SCALE_OUT", `["`+i1+`","`+i1+`"]`)),
			wants: []want{{Kind: event.KindLifecycle, InstanceID: i1, Region: hz, Source: "acs.ess", EventID: "hook-1", Lifecycle: one}}},
		{name: "test event", in: hookEvent("ess:LifecycleHook:Test", `{}`),
			wants: []want{{Kind: event.KindLifecycleTest, Region: hz, Source: "acs.ess", EventID: "hook-1"}}},
		{name: "MNS notification invoked directly", in: note,
			wants: []want{{Kind: event.KindLifecycle, InstanceID: i1, Region: hz, Source: "acs.ess", Lifecycle: one}}},
		{name: "MNS notification, base64 body", in: mnsNote,
			wants: []want{{Kind: event.KindLifecycle, InstanceID: i1, Region: hz, Source: mq, EventID: "M1", Lifecycle: one}}},
		{name: "notification region from the ARN", in: strings.Replace(note, `"regionId":"cn-hangzhou",`, ``, 1),
			wants: []want{{Kind: event.KindLifecycle, InstanceID: i1, Region: hz, Source: "acs.ess", Lifecycle: one}}},

		{name: "one bad instance among good", in: hookEvent("ess:LifecycleHook:ScaleOut", hookContent("SCALE_OUT", `["`+i1+`","i-BAD","`+i2+`"]`)),
			wants: []want{
				{Kind: event.KindLifecycle, InstanceID: i1, Region: hz, Source: "acs.ess", EventID: "hook-1", Lifecycle: out},
				{Kind: event.KindLifecycle, Region: hz, Source: "acs.ess", EventID: "hook-1", Lifecycle: out, Err: event.ErrInvalidID, ErrText: `"i-BAD" in data.instanceIds[1]`},
				{Kind: event.KindLifecycle, InstanceID: i2, Region: hz, Source: "acs.ess", EventID: "hook-1", Lifecycle: out},
			}},
		{name: "no token", in: hookEvent("ess:LifecycleHook:ScaleOut", strings.Replace(hookContent("SCALE_OUT", `["`+i1+`"]`), `"lifecycleActionToken":"9C2E9DA7-F794-449A-ACF6-CEE24444F7BB",`, ``, 1)),
			wants: []want{{Err: event.ErrMalformed, ErrText: "lifecycleActionToken"}}},
		{name: "no hook id", in: hookEvent("ess:LifecycleHook:ScaleOut", strings.Replace(hookContent("SCALE_OUT", `["`+i1+`"]`), `"lifecycleHookId":"ash-bp1hook",`, ``, 1)),
			wants: []want{{Err: event.ErrMalformed, ErrText: "lifecycleHookId"}}},
		{name: "transition contradicts type", in: hookEvent("ess:LifecycleHook:ScaleOut", hookContent("SCALE_IN", `["`+i1+`"]`)),
			wants: []want{{Kind: event.KindLifecycle, Region: hz, Source: "acs.ess", EventID: "hook-1", Lifecycle: &event.Lifecycle{
				HookID: "ash-bp1hook", Token: "9C2E9DA7-F794-449A-ACF6-CEE24444F7BB", Transition: "SCALE_IN", DefaultResult: "CONTINUE", ScalingGroupID: "asg-bp1group",
				ScalingActivityID: "asa-1"}, Err: event.ErrMalformed, ErrText: "contradicts"}}},
		{name: "unknown transition", in: note[:0] + strings.Replace(note, "SCALE_OUT", "SCALE_SIDEWAYS", 1),
			wants: []want{{Err: event.ErrMalformed, ErrText: "SCALE_SIDEWAYS"}}},
		{name: "no transition in a notification", in: strings.Replace(note, `"lifecycleTransition":"SCALE_OUT",`, ``, 1),
			wants: []want{{Err: event.ErrMalformed, ErrText: "lifecycleTransition is missing"}}},
		{name: "bad default result", in: strings.Replace(note, "CONTINUE", "MAYBE", 1),
			wants: []want{{Err: event.ErrMalformed, ErrText: "defaultResult"}}},
		{name: "no instances", in: hookEvent("ess:LifecycleHook:ScaleOut", hookContent("SCALE_OUT", `[]`)),
			wants: []want{{Err: event.ErrMalformed, ErrText: "instanceIds is missing or empty"}}},
		{name: "instances as a string", in: hookEvent("ess:LifecycleHook:ScaleOut", hookContent("SCALE_OUT", `"`+i1+`"`)),
			wants: []want{{Err: event.ErrMalformed, ErrText: "must be an array of strings"}}},
		{name: "number among instances", in: hookEvent("ess:LifecycleHook:ScaleOut", hookContent("SCALE_OUT", `["`+i1+`",5]`)),
			wants: []want{{Err: event.ErrMalformed, ErrText: "data.instanceIds[1] must be a string"}}},
		{name: "bad scaling group", in: strings.ReplaceAll(note, "asg-bp1group", "asg bp1group"),
			wants: []want{{Err: event.ErrMalformed, ErrText: "scalingGroupId"}}},
		{name: "no data", in: `{"type":"ess:LifecycleHook:ScaleOut","id":"x"}`,
			wants: []want{{Err: event.ErrMalformed, ErrText: "no data"}}},
		{name: "other ESS type", in: `{"type":"ess:ScalingActivity:ScaleOutSuccess","specversion":"1.0","source":"acs.ess","data":{}}`,
			wants: []want{{Source: "acs.ess", Err: event.ErrUnsupported, ErrText: "ess:ScalingActivity:ScaleOutSuccess"}}},
		{name: "content without a hook", in: `{"userId":"1","content":{"foo":"bar"}}`,
			wants: []want{{Err: event.ErrUnsupported, ErrText: "content keys [\"foo\"]"}}},
	})
}

func TestDecodeMNS(t *testing.T) {
	directBody := `{"instanceId":"` + i1 + `","regionId":"cn-hangzhou"}`
	d1 := want{Kind: event.KindDirect, InstanceID: i1, Region: hz, Source: mq, EventID: "M1"}
	ce := mnsEvent("M1", quote(directBody))
	ecsBody := ecsEvent(`"aliyunregionid":"cn-hangzhou",`, `{"resourceId":"`+i2+`","state":"Running"}`)
	e2 := mnsEvent("M2", quote(b64(ecsBody)))
	n3 := mnsEvent("M3", quote(notification))
	rawData := `{"requestId":"r1","messageId":"M1","messageBody":` + quote(directBody) + `}`
	// The note makes the encoding use the URL alphabet's - and _.
	urlBody := strings.Replace(directBody, `}`, `,"note":"???>>>~~~"}`, 1)
	urlB64 := strings.TrimRight(base64.URLEncoding.EncodeToString([]byte(urlBody)), "=")
	if !strings.ContainsAny(urlB64, "-_") {
		t.Fatalf("test body does not exercise the URL alphabet: %s", urlB64)
	}
	withSrc := func(w want, src, id string) want { w.Source, w.EventID = src, id; return w }
	runCases(t, []decodeCase{
		{name: "single, JSON body", in: ce, wants: []want{d1}},
		{name: "single, base64 body", in: mnsEvent("M1", quote(b64(directBody))), wants: []want{d1}},
		{name: "single, unpadded URL base64 body", in: mnsEvent("M1", quote(urlB64)),
			wants: []want{d1}},
		{name: "single, MIME-wrapped base64 body", in: mnsEvent("M1", quote(b64(directBody)[:20]+"\r\n"+b64(directBody)[20:])), wants: []want{d1}},
		{name: "single, body inlined as JSON", in: mnsEvent("M1", directBody), wants: []want{d1}},
		{name: "single, ECS event in body", in: e2,
			wants: []want{{Kind: event.KindECSStateChange, InstanceID: i2, State: "Running", Region: hz, Source: mq, EventID: "M2"}}},
		{name: "single, notification body", in: n3,
			wants: []want{{Kind: event.KindECSNotification, InstanceID: i1, State: "Running", Region: hz, Source: mq, EventID: "M3"}}},
		{name: "batch keeps each CloudEvent as Raw", in: "[" + ce + ",\n" + e2 + "," + n3 + "]",
			wants: []want{
				{Kind: event.KindDirect, InstanceID: i1, Region: hz, Source: mq, EventID: "M1", Raw: ce},
				{Kind: event.KindECSStateChange, InstanceID: i2, State: "Running", Region: hz, Source: mq, EventID: "M2", Raw: e2},
				{Kind: event.KindECSNotification, InstanceID: i1, State: "Running", Region: hz, Source: mq, EventID: "M3", Raw: n3},
			}},
		{name: "array of JSON strings", in: "[" + quote(ce) + "," + quote(e2) + "]",
			wants: []want{
				{Kind: event.KindDirect, InstanceID: i1, Region: hz, Source: mq, EventID: "M1", Raw: ce},
				{Kind: event.KindECSStateChange, InstanceID: i2, State: "Running", Region: hz, Source: mq, EventID: "M2", Raw: e2},
			}},
		{name: "RawData single", in: rawData, wants: []want{withSrc(d1, "mns", "M1")}},
		{name: "RawData batch", in: "[" + rawData + "," + strings.Replace(rawData, i1, i2, 1) + "]",
			wants: []want{
				{Kind: event.KindDirect, InstanceID: i1, Region: hz, Source: "mns", EventID: "M1", Raw: rawData},
				{Kind: event.KindDirect, InstanceID: i2, Region: hz, Source: "mns", EventID: "M1", Raw: strings.Replace(rawData, i1, i2, 1)},
			}},
		{name: "batch inside one body", in: mnsEvent("M1", quote(`[`+directBody+`,{"instanceId":"`+i2+`"}]`)),
			wants: []want{d1, {Kind: event.KindDirect, InstanceID: i2, Source: mq, EventID: "M1"}}},
		{name: "no subject", in: strings.Replace(ce, `"subject":"acs:mns:cn-hangzhou:`+acc+`:queues/enipool-work",`, ``, 1),
			wants: []want{withSrc(d1, "mns", "M1")}},
		{name: "no messageId uses the CloudEvent id", in: strings.Replace(ce, `"messageId":"M1",`, ``, 1),
			wants: []want{withSrc(d1, mq, "ce-M1")}},

		{name: "plain text body", in: mnsEvent("M9", `"TEST"`),
			wants: []want{{Source: mq, EventID: "M9", Err: event.ErrMalformed, ErrText: "neither JSON nor base64"}}},
		{name: "base64 of text", in: mnsEvent("M9", quote(b64("hello"))),
			wants: []want{{Err: event.ErrMalformed, ErrText: "neither JSON nor base64"}}},
		{name: "empty body", in: mnsEvent("M9", `"  "`),
			wants: []want{{Err: event.ErrMalformed, ErrText: "empty MNS message body"}}},
		{name: "number body", in: mnsEvent("M9", `42`),
			wants: []want{{Err: event.ErrMalformed, ErrText: "messageBody must be a string"}}},
		{name: "no data", in: `{"type":"mns:Queue:SendMessage","subject":"acs:mns:cn-hangzhou:1:queues/enipool-work"}`,
			wants: []want{{Source: mq, Err: event.ErrMalformed, ErrText: "no data"}}},
		{name: "body of unknown shape", in: mnsEvent("M9", quote(`{"hello":"world"}`)),
			wants: []want{{Source: mq, EventID: "M9", Err: event.ErrUnsupported, ErrText: `["hello"]`}}},
		{name: "bad element keeps its own Raw", in: "[" + ce + `,{"instanceId":"nope"}]`,
			wants: []want{
				{Kind: event.KindDirect, InstanceID: i1, Region: hz, Source: mq, EventID: "M1", Raw: ce},
				{Err: event.ErrInvalidID, ErrText: `"nope" in instanceId`, Raw: `{"instanceId":"nope"}`},
			}},
		{name: "invalid UTF-8 in a base64 body", in: mnsEvent("M9", quote(b64("{\"instanceId\":\"\xff\"}"))),
			wants: []want{{Err: event.ErrMalformed, ErrText: "UTF-8"}}},
		{name: "duplicate key in a body", in: mnsEvent("M9", quote(`{"instanceId":"`+i1+`","instanceId":"`+i2+`"}`)),
			wants: []want{{Err: event.ErrMalformed, ErrText: "duplicate key"}}},
	})
}

func TestDecodeDirectAndActions(t *testing.T) {
	d := func(id string) want {
		return want{Kind: event.KindDirect, InstanceID: id, Region: hz, Source: "direct"}
	}
	act := func(a event.Action, region, eni string) want {
		return want{Kind: event.KindAction, InstanceID: a.InstanceID, Region: region, ENIID: eni, Source: "direct", Action: &a}
	}
	runCases(t, []decodeCase{
		{name: "one instance", in: `{"instanceId":"` + i1 + `","regionId":"cn-hangzhou"}`, wants: []want{d(i1)}},
		{name: "region alias", in: `{"instanceId":"` + i1 + `","region":"cn-hangzhou"}`, wants: []want{d(i1)}},
		{name: "both region names agreeing", in: `{"instanceId":"` + i1 + `","region":"cn-hangzhou","regionId":"cn-hangzhou"}`, wants: []want{d(i1)}},
		{name: "no region", in: `{"instanceId":"` + i1 + `"}`, wants: []want{{Kind: event.KindDirect, InstanceID: i1, Source: "direct"}}},
		{name: "explicit ENI", in: `{"instanceId":"` + i1 + `","regionId":"cn-hangzhou","networkInterfaceId":"eni-bp1demo0000000001"}`,
			wants: []want{{Kind: event.KindDirect, InstanceID: i1, Region: hz, ENIID: "eni-bp1demo0000000001", Source: "direct"}}},
		{name: "extra fields ignored", in: `{"instanceId":"` + i1 + `","regionId":"cn-hangzhou","attempt":1}`, wants: []want{d(i1)}},
		{name: "list", in: `{"instanceIds":["` + i1 + `","` + i2 + `","` + i3 + `","` + i1 + `"],"regionId":"cn-hangzhou"}`,
			wants: []want{d(i1), d(i2), d(i3)}},
		{name: "bare array", in: `[{"instanceId":"` + i1 + `","regionId":"cn-hangzhou"}, {"instanceId":"` + i2 + `","regionId":"cn-hangzhou"}]`,
			wants: []want{
				{Kind: event.KindDirect, InstanceID: i1, Region: hz, Source: "direct", Raw: `{"instanceId":"` + i1 + `","regionId":"cn-hangzhou"}`},
				{Kind: event.KindDirect, InstanceID: i2, Region: hz, Source: "direct", Raw: `{"instanceId":"` + i2 + `","regionId":"cn-hangzhou"}`},
			}},
		{name: "list with a bad id", in: `{"instanceIds":["` + i1 + `","eni-bp1x"]}`,
			wants: []want{{Kind: event.KindDirect, InstanceID: i1, Source: "direct"}, {Kind: event.KindDirect, Source: "direct", Err: event.ErrInvalidID, ErrText: "instanceIds[1]"}}},
		{name: "JSON string payload", in: quote(`{"instanceId":"` + i1 + `","regionId":"cn-hangzhou"}`),
			wants: []want{{Kind: event.KindDirect, InstanceID: i1, Region: hz, Source: "direct", Raw: `{"instanceId":"` + i1 + `","regionId":"cn-hangzhou"}`}}},

		{name: "bad ENI", in: `{"instanceId":"` + i1 + `","networkInterfaceId":"eni-"}`, wants: []want{{Err: event.ErrInvalidID, ErrText: "networkInterfaceId"}}},
		{name: "bad region", in: `{"instanceId":"` + i1 + `","regionId":"hangzhou"}`, wants: []want{{Err: event.ErrInvalidID, ErrText: `region "hangzhou" in regionId`}}},
		{name: "regions disagree", in: `{"instanceId":"` + i1 + `","regionId":"cn-hangzhou","region":"cn-beijing"}`, wants: []want{{Err: event.ErrMalformed, ErrText: "disagree"}}},
		{name: "near-miss field", in: `{"instanceId":"` + i1 + `","networkInterfaceID":"eni-bp1x"}`, wants: []want{{Err: event.ErrMalformed, ErrText: `did you mean "networkInterfaceId"`}}},
		{name: "near-miss id field", in: `{"instanceID":"` + i1 + `","instanceIds":["` + i2 + `"]}`, wants: []want{{Err: event.ErrMalformed, ErrText: `did you mean "instanceId"`}}},
		{name: "both id forms", in: `{"instanceId":"` + i1 + `","instanceIds":["` + i2 + `"]}`, wants: []want{{Err: event.ErrMalformed, ErrText: "not both"}}},
		{name: "empty list", in: `{"instanceIds":[]}`, wants: []want{{Err: event.ErrMalformed, ErrText: "instanceIds is empty"}}},
		{name: "ENI with a list", in: `{"instanceIds":["` + i1 + `"],"networkInterfaceId":"eni-bp1x"}`, wants: []want{{Err: event.ErrMalformed, ErrText: "networkInterfaceId"}}},
		{name: "number for id", in: `{"instanceId":1234}`, wants: []want{{Err: event.ErrMalformed, ErrText: "instanceId must be a string, got a number"}}},
		{name: "number for region", in: `{"instanceId":"` + i1 + `","regionId":1}`, wants: []want{{Err: event.ErrMalformed, ErrText: "regionId must be a string"}}},
		{name: "list of numbers", in: `{"instanceIds":[1,2]}`, wants: []want{{Err: event.ErrMalformed, ErrText: "instanceIds[0] must be a string"}}},

		{name: "status", in: `{"action":"status","pool":"web"}`, wants: []want{act(event.Action{Name: "status", Pool: "web"}, "", "")}},
		{name: "status of one instance", in: `{"action":"status","instanceId":"` + i1 + `","regionId":"cn-hangzhou"}`,
			wants: []want{act(event.Action{Name: "status", InstanceID: i1}, hz, "")}},
		{name: "reconcile", in: `{"action":"Reconcile","pool":"web","max":10}`, wants: []want{act(event.Action{Name: "reconcile", Pool: "web", Max: 10}, "", "")}},
		{name: "redrive", in: `{"action":"redrive","max":0}`, wants: []want{act(event.Action{Name: "redrive"}, "", "")}},
		{name: "detach instance", in: `{"action":"detach","instanceId":"` + i1 + `","region":"cn-hangzhou"}`, wants: []want{act(event.Action{Name: "detach", InstanceID: i1}, hz, "")}},
		{name: "detach ENI", in: `{"action":"detach","networkInterfaceId":"eni-bp1x"}`, wants: []want{act(event.Action{Name: "detach"}, "", "eni-bp1x")}},

		{name: "unknown action", in: `{"action":"explode"}`, wants: []want{{Err: event.ErrUnsupported, ErrText: `action "explode"`}}},
		{name: "empty action", in: `{"action":""}`, wants: []want{{Err: event.ErrUnsupported}}},
		{name: "action not a string", in: `{"action":1}`, wants: []want{{Err: event.ErrMalformed, ErrText: "action must be a string"}}},
		{name: "misspelt field refused", in: `{"action":"reconcile","instanceid":"` + i1 + `"}`, wants: []want{{Err: event.ErrMalformed, ErrText: `unknown field "instanceid"`}}},
		{name: "max as a string", in: `{"action":"redrive","max":"10"}`, wants: []want{{Err: event.ErrMalformed, ErrText: "max must be a number, got a string"}}},
		{name: "negative max", in: `{"action":"redrive","max":-1}`, wants: []want{{Err: event.ErrMalformed, ErrText: "whole number"}}},
		{name: "fractional max", in: `{"action":"redrive","max":1.5}`, wants: []want{{Err: event.ErrMalformed, ErrText: "whole number"}}},
		{name: "huge max", in: `{"action":"redrive","max":1e400}`, wants: []want{{Err: event.ErrMalformed}}},
		{name: "detach needs a target", in: `{"action":"detach"}`, wants: []want{{Err: event.ErrMalformed, ErrText: "detach needs"}}},
		{name: "bad instance in action", in: `{"action":"status","instanceId":"i_1"}`, wants: []want{{Err: event.ErrInvalidID}}},
		{name: "control characters in pool", in: `{"action":"status","pool":"w\u0000b"}`, wants: []want{{Err: event.ErrMalformed, ErrText: "pool"}}},
	})
}

func TestDecodeRedrive(t *testing.T) {
	direct := `{"instanceId":"` + i1 + `","regionId":"cn-hangzhou"}`
	base := deadletter.Envelope{
		Reason: "no Available ENI in the pool; add ENIs, then redrive", Verdict: "dead-letter", InstanceID: i1, Region: hz,
		Error:    &deadletter.Error{Service: "ecs", API: "AttachNetworkInterface", Code: "MaxEniCountExceeded", Message: "limit", HTTPStatus: 403},
		Attempts: 2, FunctionRequestID: "req-9", RedriveCount: 1, Time: time.Date(2024, 5, 1, 0, 0, 0, 0, time.UTC),
		Source: "direct", EventID: "", Event: []byte(direct),
	}
	rd := &event.Redrive{InstanceID: i1, RedriveCount: 2, PreviousAction: "dead-letter", PreviousError: "MaxEniCountExceeded: limit",
		EnvelopeSource: "direct", FunctionRequestID: "req-9", Attempts: 2}
	env := envelope(t, base)

	mnsOrig := mnsEvent("M1", quote(direct))
	viaMNS := base
	viaMNS.Event, viaMNS.Source, viaMNS.EventID, viaMNS.RedriveCount = []byte(mnsOrig), mq, "M1", 0
	envOfMNS := envelope(t, viaMNS)
	rdMNS := &event.Redrive{InstanceID: i1, RedriveCount: 1, PreviousAction: "dead-letter", PreviousError: "MaxEniCountExceeded: limit",
		EnvelopeSource: mq, EnvelopeEventID: "M1", FunctionRequestID: "req-9", Attempts: 2}

	binary := base
	binary.Event = []byte("{\"instanceId\":\"\xff\"}")
	trunc := base
	trunc.Event = []byte(`{"instanceId":"` + i1 + `","pad":"` + strings.Repeat("x", 70000) + `"}`)
	nested := env
	for range 6 {
		e := base
		e.Event = []byte(nested)
		nested = envelope(t, e)
	}
	fc := `{"timestamp":1714528860123,"requestContext":{"requestId":"fc-1","functionArn":"acs:fc:cn-hangzhou:1:functions/enipool",` +
		`"condition":"UnhandledInvocationError","approximateInvokeCount":3},"requestPayload":` + quote(direct) +
		`,"responseContext":{"statusCode":200,"functionError":"boom\nline two"},"responsePayload":""}`
	rdFC := &event.Redrive{FCDestination: true, RedriveCount: 1, PreviousAction: "UnhandledInvocationError",
		PreviousError: "boom line two", FunctionRequestID: "fc-1", Attempts: 3}
	fcOfEnv := `{"requestContext":{"requestId":"fc-2"},"requestPayload":` + quote(env) + `}`

	runCases(t, []decodeCase{
		{name: "envelope", in: env,
			wants: []want{{Kind: event.KindDirect, InstanceID: i1, Region: hz, Source: "deadletter", Redrive: rd, Raw: direct}}},
		{name: "envelope moved to the work queue", in: mnsEvent("M7", quote(env)),
			wants: []want{{Kind: event.KindDirect, InstanceID: i1, Region: hz, Source: mq, EventID: "M7", Redrive: rd, Raw: direct}}},
		{name: "envelope in a base64 body", in: mnsEvent("M7", quote(b64(env))),
			wants: []want{{Kind: event.KindDirect, InstanceID: i1, Region: hz, Source: mq, EventID: "M7", Redrive: rd, Raw: direct}}},
		{name: "envelope of an MNS message keeps the message as Raw", in: mnsEvent("M8", quote(envOfMNS)),
			wants: []want{{Kind: event.KindDirect, InstanceID: i1, Region: hz, Source: mq, EventID: "M8", Redrive: rdMNS, Raw: mnsOrig}}},
		{name: "envelope of an MNS message, invoked directly", in: envOfMNS,
			wants: []want{{Kind: event.KindDirect, InstanceID: i1, Region: hz, Source: "deadletter", EventID: "M1", Redrive: rdMNS, Raw: mnsOrig}}},
		{name: "envelope of binary event", in: envelope(t, binary),
			wants: []want{{Source: "deadletter", Redrive: rd, Err: event.ErrMalformed, ErrText: "UTF-8", Raw: string(binary.Event)}}},
		{name: "truncated envelope", in: envelope(t, trunc),
			wants: []want{{Source: "deadletter", Err: deadletter.ErrTruncated, ErrText: "find the event with sha256"}}},
		{name: "truncated envelope is too large", in: envelope(t, trunc),
			wants: []want{{Err: event.ErrTooLarge}}},
		{name: "envelope of another version", in: strings.Replace(env, `"version":1`, `"version":2`, 1),
			wants: []want{{Source: "deadletter", Err: deadletter.ErrVersion}}},
		{name: "envelope with a bad digest", in: strings.Replace(env, `"eventSize":`, `"eventSize":1`, 1),
			wants: []want{{Source: "deadletter", Err: event.ErrMalformed, ErrText: "eventSize"}}},
		{name: "envelope without event", in: `{"type":"enipool.deadletter","version":1,"reason":"r","action":"a"}`,
			wants: []want{{Source: "deadletter", Err: event.ErrMalformed, ErrText: "empty event"}}},
		{name: "envelopes nested too deep", in: nested,
			wants: []want{{Err: event.ErrTooDeep, ErrText: "wrapped", Raw: "*"}}},
		{name: "FC destination record", in: fc,
			wants: []want{{Kind: event.KindDirect, InstanceID: i1, Region: hz, Source: "fc-destination", Redrive: rdFC, Raw: direct}}},
		{name: "FC record with a base64 payload", in: strings.Replace(fc, quote(direct), quote(b64(direct)), 1),
			wants: []want{{Kind: event.KindDirect, InstanceID: i1, Region: hz, Source: "fc-destination", Redrive: rdFC, Raw: direct}}},
		{name: "FC record in the work queue", in: mnsEvent("M5", quote(fc)),
			wants: []want{{Kind: event.KindDirect, InstanceID: i1, Region: hz, Source: mq, EventID: "M5", Redrive: rdFC, Raw: direct}}},
		{name: "FC record of an envelope keeps the redrive count", in: fcOfEnv,
			wants: []want{{Kind: event.KindDirect, InstanceID: i1, Region: hz, Source: "fc-destination", Raw: direct,
				Redrive: &event.Redrive{FCDestination: true, InstanceID: i1, RedriveCount: 2, FunctionRequestID: "fc-2", EnvelopeSource: "direct"}}}},
		{name: "FC record with an empty payload", in: `{"requestContext":{},"requestPayload":""}`,
			wants: []want{{Source: "fc-destination", Err: event.ErrMalformed, ErrText: "empty requestPayload"}}},
		{name: "FC record with a bad context", in: `{"requestContext":"x","requestPayload":"{}"}`,
			wants: []want{{Source: "fc-destination", Err: deadletter.ErrInvalid}}},
	})
}

func TestDecodeHostile(t *testing.T) {
	d1 := `{"instanceId":"` + i1 + `"}`
	deep := func(n int) string { return strings.Repeat(`{"a":`, n) + `1` + strings.Repeat(`}`, n) }
	// A JSON string holding a JSON string holding ... an event.
	wrapped := d1
	for range 7 {
		wrapped = quote(wrapped)
	}
	manyIDs := `{"instanceIds":["i-1","i-2","i-3","i-4","i-5"]}`
	var keys []string
	for i := range 1001 {
		keys = append(keys, fmt.Sprintf(`"k%d":0`, i))
	}
	manyKeys := "{" + strings.Join(keys, ",") + "}"
	runCases(t, []decodeCase{
		{name: "empty", in: ``, wants: []want{{Err: event.ErrMalformed, ErrText: "empty payload"}}},
		{name: "whitespace", in: " \n\t ", wants: []want{{Err: event.ErrMalformed, ErrText: "empty payload"}}},
		{name: "not JSON", in: `hello`, wants: []want{{Err: event.ErrMalformed, ErrText: "not valid JSON"}}},
		{name: "truncated JSON", in: d1[:10], wants: []want{{Err: event.ErrMalformed}}},
		{name: "two values", in: d1 + d1, wants: []want{{Err: event.ErrMalformed}}},
		{name: "binary", in: "\x89PNG\r\n\x1a\n", wants: []want{{Err: event.ErrMalformed, ErrText: "not valid UTF-8"}}},
		{name: "invalid UTF-8 in a string", in: "{\"instanceId\":\"i-\xff\"}", wants: []want{{Err: event.ErrMalformed, ErrText: "invalid UTF-8 at offset 17"}}},
		{name: "raw NUL", in: "{\"instanceId\":\"i-1\x00\"}", wants: []want{{Err: event.ErrMalformed, ErrText: "NUL byte at offset 18"}}},
		{name: "NUL after the value", in: d1 + "\x00", wants: []want{{Err: event.ErrMalformed, ErrText: "NUL"}}},
		{name: "escaped NUL in an id", in: `{"instanceId":"i-1\u0000"}`, wants: []want{{Err: event.ErrInvalidID}}},
		{name: "duplicate key", in: `{"instanceId":"` + i1 + `","instanceId":"` + i2 + `"}`, wants: []want{{Err: event.ErrMalformed, ErrText: `duplicate key "instanceId"`}}},
		{name: "duplicate key, escaped", in: `{"instanceId":"` + i1 + `","instance\u0049d":"` + i2 + `"}`, wants: []want{{Err: event.ErrMalformed, ErrText: "duplicate key"}}},
		{name: "duplicate key deep inside", in: ecsEvent(``, `{"resourceId":"`+i1+`","state":"Running","content":{"x":1,"x":2}}`), wants: []want{{Err: event.ErrMalformed, ErrText: "duplicate key"}}},
		{name: "same key in sibling objects", in: `[{"instanceId":"` + i1 + `"},{"instanceId":"` + i2 + `"}]`,
			wants: []want{{Kind: event.KindDirect, InstanceID: i1, Source: "direct", Raw: `{"instanceId":"` + i1 + `"}`}, {Kind: event.KindDirect, InstanceID: i2, Source: "direct", Raw: `{"instanceId":"` + i2 + `"}`}}},
		{name: "nesting at the limit", in: `{"instanceId":"` + i1 + `","x":` + deep(63) + `}`, wants: []want{{Kind: event.KindDirect, InstanceID: i1, Source: "direct"}}},
		{name: "nesting over the limit", in: `{"instanceId":"` + i1 + `","x":` + deep(64) + `}`, wants: []want{{Err: event.ErrTooDeep, ErrText: "64 levels"}}},
		{name: "brackets in strings are not nesting", in: `{"instanceId":"` + i1 + `","x":"` + strings.Repeat(`[{\"`, 100) + `"}`, wants: []want{{Kind: event.KindDirect, InstanceID: i1, Source: "direct"}}},
		{name: "very deep", in: strings.Repeat("[", 1<<20), wants: []want{{Err: event.ErrTooDeep}}},
		{name: "custom depth", in: deep(5), opts: event.Options{MaxDepth: 4}, wants: []want{{Err: event.ErrTooDeep, ErrText: "4 levels"}}},
		{name: "too large", in: d1, opts: event.Options{MaxBytes: 10}, wants: []want{{Err: event.ErrTooLarge, ErrText: "limit of 10"}}},
		{name: "too many elements", in: "[" + d1 + "," + d1 + "," + d1 + "]", opts: event.Options{MaxEvents: 2}, wants: []want{{Err: event.ErrTooLarge, ErrText: "batch of 3 events"}}},
		{name: "too many instances", in: manyIDs, opts: event.Options{MaxEvents: 4}, wants: []want{{Err: event.ErrTooLarge, ErrText: "more than the limit of 4"}}},
		{name: "elements counted exactly", in: `[ {"instanceId":"` + i1 + `"} , "{\"instanceId\":\"` + i2 + `\"}" ]`, opts: event.Options{MaxEvents: 2},
			wants: []want{{Kind: event.KindDirect, InstanceID: i1, Source: "direct", Raw: `{"instanceId":"` + i1 + `"}`}, {Kind: event.KindDirect, InstanceID: i2, Source: "direct", Raw: `{"instanceId":"` + i2 + `"}`}}},
		{name: "too many keys", in: manyKeys, wants: []want{{Err: event.ErrTooLarge, ErrText: "more than 1000 keys"}}},
		{name: "1000 keys", in: strings.Replace(manyKeys, `,"k1000":0`, ``, 1), wants: []want{{Err: event.ErrUnsupported, ErrText: `["k0" "k1" "k10"`}}},
		{name: "empty batch", in: `[ ]`, wants: []want{{Err: event.ErrMalformed, ErrText: "empty batch"}}},
		{name: "nested array element", in: `[[` + d1 + `]]`, wants: []want{{Err: event.ErrUnsupported, ErrText: "batch element is an array", Raw: `[` + d1 + `]`}}},
		{name: "number element", in: `[1]`, wants: []want{{Err: event.ErrUnsupported, ErrText: "batch element is a number", Raw: `1`}}},
		{name: "number", in: `42`, wants: []want{{Err: event.ErrUnsupported, ErrText: "payload is a number"}}},
		{name: "null", in: `null`, wants: []want{{Err: event.ErrUnsupported, ErrText: "payload is null"}}},
		{name: "empty string", in: `""`, wants: []want{{Err: event.ErrMalformed, ErrText: "JSON string holds no event"}}},
		{name: "string of garbage", in: `"hello"`, wants: []want{{Err: event.ErrMalformed, ErrText: "not valid JSON", Raw: `hello`}}},
		{name: "strings wrapped too deep", in: wrapped, wants: []want{{Err: event.ErrTooDeep, ErrText: "wrapped", Raw: "*"}}},
		{name: "unknown object", in: `{"foo":1,"bar":2}`, wants: []want{{Err: event.ErrUnsupported, ErrText: `["bar" "foo"]`}}},
		{name: "unknown CloudEvent", in: `{"specversion":"1.0","type":"oss:ObjectCreated:PutObject","source":"acs.oss","data":{}}`,
			wants: []want{{Source: "acs.oss", Err: event.ErrUnsupported, ErrText: `CloudEvent type "oss:ObjectCreated:PutObject"`}}},
		{name: "long type clipped", in: `{"type":"` + strings.Repeat("x", 1000) + `"}`, wants: []want{{Err: event.ErrUnsupported, ErrText: "..."}}},
		{name: "lone surrogate", in: `{"instanceId":"i-\ud800"}`, wants: []want{{Err: event.ErrInvalidID}}},
		{name: "huge id", in: `{"instanceId":"i-` + strings.Repeat("a", 100000) + `"}`, wants: []want{{Err: event.ErrInvalidID}}},
	})
}

// TestDecodeKeepsRawIdentity checks that Raw of a batch element is the
// element's own bytes, not a copy of the whole payload.
func TestDecodeLargeBatch(t *testing.T) {
	var b strings.Builder
	b.WriteString("[")
	for i := range event.DefaultMaxEvents {
		if i > 0 {
			b.WriteString(",")
		}
		fmt.Fprintf(&b, `{"instanceId":"i-bp1x%d"}`, i)
	}
	b.WriteString("]")
	got := event.Decode([]byte(b.String()), event.Options{})
	checkInvariants(t, []byte(b.String()), got)
	if len(got) != event.DefaultMaxEvents || got[9999].InstanceID != "i-bp1x9999" || string(got[5].Raw) != `{"instanceId":"i-bp1x5"}` {
		t.Fatalf("got %d requests, last %+v", len(got), got[len(got)-1])
	}
	over := "[" + b.String()[1:len(b.String())-1] + `,{"instanceId":"i-bp1y"}]`
	got = event.Decode([]byte(over), event.Options{})
	if len(got) != 1 || got[0].Err == nil {
		t.Fatalf("batch over the limit: %d requests, err %v", len(got), got[0].Err)
	}
}

// A payload refused for wrapping too deep is dead-lettered as it came: keeping an inner
// layer instead would let the next redrive accept what was refused.
func TestTooDeepKeepsThePayload(t *testing.T) {
	direct := `{"instanceId":"` + i1 + `","regionId":"cn-hangzhou"}`
	wrapString := func(s string, n int) string {
		for range n {
			b, _ := json.Marshal(s)
			s = string(b)
		}
		return s
	}
	wrapEnvelope := func(s string, n int) string {
		for range n {
			b, err := deadletter.Marshal(&deadletter.Envelope{Reason: "r", Verdict: "dead-letter", InstanceID: i1, Event: []byte(s),
				Time: time.Date(2024, 5, 1, 0, 0, 0, 0, time.UTC)})
			if err != nil {
				t.Fatal(err)
			}
			s = string(b)
		}
		return s
	}
	for name, payload := range map[string]string{
		"JSON string wrapped 7 times": wrapString(direct, 7),
		"envelope wrapped 7 times":    wrapEnvelope(direct, 7),
	} {
		t.Run(name, func(t *testing.T) {
			reqs := event.Decode([]byte(payload), event.Options{})
			if len(reqs) != 1 || !errors.Is(reqs[0].Err, event.ErrTooDeep) {
				t.Fatalf("got %d requests, first error %v; want one ErrTooDeep", len(reqs), reqs[0].Err)
			}
			if string(reqs[0].Raw) != payload {
				t.Fatalf("Raw is %d bytes of an inner layer, not the %d-byte payload", len(reqs[0].Raw), len(payload))
			}
		})
	}
}
