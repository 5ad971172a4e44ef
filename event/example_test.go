package event_test

import (
	"errors"
	"fmt"

	"github.com/enipool/enipool/event"
)

func Example_decode() {
	payload := []byte(`[
	  {"instanceId": "i-bp1demo00000000001", "regionId": "cn-hangzhou"},
	  {"type": "mns:Queue:SendMessage", "subject": "acs:mns:cn-hangzhou:1234567890123456:queues/enipool-work",
	   "data": {"messageId": "M1", "messageBody": "eyJpbnN0YW5jZUlkIjoiaS1icDFkZW1vMDAwMDAwMDAwMDIifQ=="}},
	  {"instanceId": "i-NOT-AN-ID"}
	]`)
	for _, r := range event.Decode(payload, event.Options{}) {
		if r.Err != nil {
			// Dead-letter r.Raw with the reason.
			fmt.Println("error:", errors.Is(r.Err, event.ErrInvalidID), r.Err, string(r.Raw))
			continue
		}
		fmt.Printf("%s %s region=%q source=%s id=%q\n", r.Kind, r.InstanceID, r.Region, r.Source, r.EventID)
	}
	// Output:
	// direct i-bp1demo00000000001 region="cn-hangzhou" source=direct id=""
	// direct i-bp1demo00000000002 region="" source=mns:enipool-work id="M1"
	// error: true invalid id: instance id "i-NOT-AN-ID" in instanceId: want i- followed by 1-64 lowercase letters or digits {"instanceId": "i-NOT-AN-ID"}
}
