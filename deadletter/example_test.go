package deadletter_test

import (
	"errors"
	"fmt"
	"time"

	"github.com/enipool/enipool/deadletter"
)

func ExampleEnvelope() {
	original := []byte(`{"instanceId":"i-bp1demo00000000001","regionId":"cn-hangzhou"}`)
	b, err := deadletter.Marshal(&deadletter.Envelope{
		Reason:     "no Available ENI with tag enipool=web in zone cn-hangzhou-h; add ENIs to the pool, then redrive",
		Verdict:    "dead-letter",
		InstanceID: "i-bp1demo00000000001",
		Region:     "cn-hangzhou",
		Pool:       "web",
		Attempts:   1,
		Time:       time.Date(2024, 5, 1, 2, 0, 31, 0, time.UTC),
		Source:     "direct",
		Event:      original,
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(len(b) <= deadletter.MaxMessageBytes, deadletter.IsEnvelope(b))

	e, err := deadletter.Parse(b)
	if err != nil {
		fmt.Println(err)
		return
	}
	ev, err := e.OriginalEvent()
	fmt.Println(e.Verdict, e.InstanceID, e.EventSize, string(ev), err)

	// An event too large for the queue keeps its prefix, size and sha256.
	big := make([]byte, 100_000)
	b, _ = deadletter.Marshal(&deadletter.Envelope{Reason: "too big", Verdict: "dead-letter", Event: big})
	e, _ = deadletter.Parse(b)
	_, err = e.OriginalEvent()
	fmt.Println(e.EventTruncated, e.EventSize, errors.Is(err, deadletter.ErrTruncated))
	// Output:
	// true true
	// dead-letter i-bp1demo00000000001 62 {"instanceId":"i-bp1demo00000000001","regionId":"cn-hangzhou"} <nil>
	// true 100000 true
}
