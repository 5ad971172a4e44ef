package harness

import (
	"encoding/json"
	"fmt"
	"strings"
)

// The payloads below follow the shapes of the samples in events/.

// Direct returns a direct invocation for one instance: {"instanceId":...,"regionId":...}.
func Direct(instance, region string) []byte {
	return fmt.Appendf(nil, `{"instanceId":%q,"regionId":%q}`, instance, region)
}

// ECSRunning returns the EventBridge ecs:Instance:StateChange CloudEvent of an instance
// reaching Running: what a launch delivers in production.
func ECSRunning(instance, region, account string) []byte {
	return fmt.Appendf(nil, `{"id":"bench-%s-running","source":"acs.ecs","specversion":"1.0",`+
		`"type":"ecs:Instance:StateChange","subject":"acs:ecs:%s:%s:instance/%s",`+
		`"time":"2024-05-01T10:00:01+08:00","datacontenttype":"application/json;charset=utf-8",`+
		`"aliyunaccountid":%q,"aliyunpublishtime":"2024-05-01T10:00:01.179PRC","aliyuneventbusname":"default",`+
		`"aliyunregionid":%q,"aliyunpublishaddr":"100.104.12.7",`+
		`"data":{"resourceId":%q,"resourceType":"ALIYUN::ECS::Instance","state":"Running"}}`,
		instance, region, account, instance, account, region, instance)
}

// MNSMessage returns the MNS queue trigger CloudEvent (type mns:Queue:SendMessage) whose
// messageBody is body.
func MNSMessage(seq int, body []byte, region, account string) json.RawMessage {
	b, _ := json.Marshal(string(body)) // a string always marshals
	return fmt.Appendf(nil, `{"id":"bench-mns-%08d","source":"MNS-enipool-work-queue","specversion":"1.0",`+
		`"type":"mns:Queue:SendMessage","datacontenttype":"application/json; charset=utf-8",`+
		`"subject":"acs:mns:%s:%s:queues/enipool-work","time":"2024-05-01T02:00:06.000Z",`+
		`"aliyunaccountid":%q,"aliyunpublishtime":"2024-05-01T02:00:06.000Z","aliyunoriginalaccountid":%q,`+
		`"aliyuneventbusname":"MNS-enipool-work-queue","aliyunregionid":%q,"aliyunpublishaddr":"100.104.12.11",`+
		`"data":{"requestId":"BENCH%019d","messageId":"BENCHMSG%024d","messageBody":%s}}`,
		seq, region, account, account, account, region, seq, seq, b)
}

// MNSBatches groups instances into MNS batches of size (JSON arrays of queue CloudEvents, as
// the MNS trigger delivers a batch). Message bodies alternate between a direct request and an
// EventBridge ECS Running event, the two bodies a work queue carries.
func MNSBatches(instances []string, size int, region, account string) [][]byte {
	var out [][]byte
	for from := 0; from < len(instances); from += size {
		var msgs []string
		for i := from; i < min(from+size, len(instances)); i++ {
			body := Direct(instances[i], region)
			if i%2 == 1 {
				body = ECSRunning(instances[i], region, account)
			}
			msgs = append(msgs, string(MNSMessage(i+1, body, region, account)))
		}
		out = append(out, []byte("["+strings.Join(msgs, ",")+"]"))
	}
	return out
}

// DirectBatch returns one JSON array of direct events, one per instance.
func DirectBatch(instances []string, region string) []byte {
	parts := make([]string, len(instances))
	for i, id := range instances {
		parts[i] = string(Direct(id, region))
	}
	return []byte("[" + strings.Join(parts, ",") + "]")
}
