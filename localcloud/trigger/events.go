package trigger

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// CloudEvent is an EventBridge event (CloudEvents 1.0 plus Alibaba's extension attributes),
// with the keys in the order of EventBridge's "Event overview" sample.
type CloudEvent struct {
	ID                      string          `json:"id"`
	Source                  string          `json:"source"`
	SpecVersion             string          `json:"specversion"`
	Type                    string          `json:"type"`
	DataContentType         string          `json:"datacontenttype,omitempty"`
	Subject                 string          `json:"subject,omitempty"`
	Time                    string          `json:"time"`
	AliyunAccountID         string          `json:"aliyunaccountid"`
	AliyunPublishTime       string          `json:"aliyunpublishtime"`
	AliyunOriginalAccountID string          `json:"aliyunoriginalaccountid,omitempty"`
	AliyunEventBusName      string          `json:"aliyuneventbusname"`
	AliyunRegionID          string          `json:"aliyunregionid"`
	AliyunPublishAddr       string          `json:"aliyunpublishaddr"`
	Data                    json.RawMessage `json:"data"`
}

// Event types this package builds.
const (
	TypeECSStateChange = "ecs:Instance:StateChange"
	TypeESSScaleOut    = "ess:LifecycleHook:ScaleOut"
	TypeESSScaleIn     = "ess:LifecycleHook:ScaleIn"
	TypeMNSSendMessage = "mns:Queue:SendMessage"
)

// publishAddr stands in for the address EventBridge records as the publisher's.
const publishAddr = "127.0.0.1"

// prcTime formats t as EventBridge's overview sample shows aliyunpublishtime for service
// events on the default bus: China Standard Time with milliseconds and a literal "PRC"
// ("2020-11-19T21:04:42.179PRC"), which is not RFC 3339. It is kept so that a consumer that
// parses the field as a time fails here, not only in production.
func prcTime(t time.Time) string {
	return t.In(time.FixedZone("PRC", 8*3600)).Format("2006-01-02T15:04:05.000") + "PRC"
}

// utcMillis is the "2021-04-08T06:28:17.093Z" form of the MNS queue trigger sample.
func utcMillis(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z") }

// newUUID returns a random RFC 4122 version 4 UUID.
func newUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

// newHexID returns n random bytes as upper-case hex, the form of MNS request and message ids.
func newHexID(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return strings.ToUpper(hex.EncodeToString(b))
}

// ECSStateChange builds the ecs:Instance:StateChange event ECS puts on the default bus when
// instance changes to state (Pending, Starting, Running, Stopping, Stopped, Deleted).
//
// The envelope follows EventBridge's "Event overview" sample; source acs.ecs and the type are
// from EventBridge's "ECS events" page. No published sample of the whole event was found: data
// carries the keys of the ECS event notification's content (resourceId, resourceType "ALIYUN::
// ECS::Instance", state; ECS "Instance event notification"), which Alibaba's own spot-instance
// sample function reads as data.resourceId and data.state. The subject is the instance's ARN.
func ECSStateChange(region, account, instanceID, state string, at time.Time) CloudEvent {
	data, _ := json.Marshal(struct {
		ResourceID   string `json:"resourceId"`
		ResourceType string `json:"resourceType"`
		State        string `json:"state"`
	}{instanceID, "ALIYUN::ECS::Instance", state})
	return CloudEvent{
		ID:                 newUUID(),
		Source:             "acs.ecs",
		SpecVersion:        "1.0",
		Type:               TypeECSStateChange,
		Subject:            fmt.Sprintf("acs:ecs:%s:%s:instance/%s", region, account, instanceID),
		Time:               at.UTC().Format(time.RFC3339),
		AliyunAccountID:    account,
		AliyunPublishTime:  prcTime(at),
		AliyunEventBusName: "default",
		AliyunRegionID:     region,
		AliyunPublishAddr:  publishAddr,
		Data:               data,
	}
}

// MNSQueueMessage builds the CloudEvent an MNS queue trigger (an EventBridge event stream
// from the queue, CloudEvents format) hands the function for one message: type
// mns:Queue:SendMessage, the queue's ARN as subject, and data {requestId, messageId,
// messageBody} with the body as text (see the package doc for the sources). source is the
// stream's source name ("MNS-<queue>" by default); enqueued is when the message was sent,
// now when the stream took it.
func MNSQueueMessage(region, account, queue, source, messageID string, body []byte, enqueued, now time.Time) CloudEvent {
	data, _ := json.Marshal(mnsData{RequestID: newHexID(12), MessageID: messageID, MessageBody: string(body)})
	return CloudEvent{
		ID:                      newUUID(),
		Source:                  source,
		SpecVersion:             "1.0",
		Type:                    TypeMNSSendMessage,
		DataContentType:         "application/json;charset=utf-8",
		Subject:                 fmt.Sprintf("acs:mns:%s:%s:queues/%s", region, account, queue),
		Time:                    utcMillis(enqueued),
		AliyunAccountID:         account,
		AliyunPublishTime:       utcMillis(now),
		AliyunOriginalAccountID: account,
		AliyunEventBusName:      source,
		AliyunRegionID:          region,
		AliyunPublishAddr:       publishAddr,
		Data:                    data,
	}
}

// Lifecycle is an Auto Scaling lifecycle action, the content of its notification.
type Lifecycle struct {
	LifecycleHookID      string   `json:"lifecycleHookId"`
	LifecycleActionToken string   `json:"lifecycleActionToken"`
	LifecycleHookName    string   `json:"lifecycleHookName"`
	ScalingGroupID       string   `json:"scalingGroupId"`
	ScalingGroupName     string   `json:"scalingGroupName"`
	LifecycleTransition  string   `json:"lifecycleTransition"` // SCALE_OUT or SCALE_IN
	DefaultResult        string   `json:"defaultResult"`       // CONTINUE, ABANDON or ROLLBACK
	RequestID            string   `json:"requestId"`
	ScalingActivityID    string   `json:"scalingActivityId"`
	InstanceIDs          []string `json:"instanceIds"`
}

// ESSLifecycle builds the ess:LifecycleHook:ScaleOut or ScaleIn event (per
// l.LifecycleTransition) Auto Scaling puts on the default bus for a hook whose
// NotificationArn is the default event bus.
//
// The types are from EventBridge's "Auto Scaling events" page; source acs.ess follows the
// acs.<product> convention. No published sample of these events' data exists in any source
// found: data is assumed to carry the lifecycle notification's content keys, as ESS sends them
// to an MNS queue (ESS best practice "add ECS instances to a Redis whitelist"). The subject
// (the scaling group's ARN) is also an assumption.
func ESSLifecycle(region, account string, l Lifecycle, at time.Time) CloudEvent {
	typ := TypeESSScaleOut
	if l.LifecycleTransition == "SCALE_IN" {
		typ = TypeESSScaleIn
	}
	data, _ := json.Marshal(l)
	return CloudEvent{
		ID:                 newUUID(),
		Source:             "acs.ess",
		SpecVersion:        "1.0",
		Type:               typ,
		Subject:            fmt.Sprintf("acs:ess:%s:%s:scalinggroup/%s", region, account, l.ScalingGroupID),
		Time:               at.UTC().Format(time.RFC3339),
		AliyunAccountID:    account,
		AliyunPublishTime:  prcTime(at),
		AliyunEventBusName: "default",
		AliyunRegionID:     region,
		AliyunPublishAddr:  publishAddr,
		Data:               data,
	}
}

// mnsData is the data of an MNS queue event (fc-runtime-go-sdk events.Data).
type mnsData struct {
	RequestID   string `json:"requestId"`
	MessageID   string `json:"messageId"`
	MessageBody string `json:"messageBody"`
}

// TimerEvent is what FC hands a function for a timer trigger (fc-runtime-go-sdk
// events.TimerEvent): the configured payload travels as a string.
type TimerEvent struct {
	TriggerTime string `json:"triggerTime"`
	TriggerName string `json:"triggerName"`
	Payload     string `json:"payload"`
}

// timerPayload is a timer event's JSON, with triggerTime in the README's form
// ("2022-07-29T10:02:58Z": UTC, whole seconds).
func timerPayload(name, payload string, at time.Time) []byte {
	b, _ := json.Marshal(TimerEvent{
		TriggerTime: at.UTC().Truncate(time.Second).Format(time.RFC3339),
		TriggerName: name,
		Payload:     payload,
	})
	return b
}
