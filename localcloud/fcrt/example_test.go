package fcrt_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log"
	"os"
	"time"

	"github.com/enipool/enipool/localcloud/fcrt"
)

// Run a built go1 function and invoke it synchronously, as `s invoke` would.
func Example() {
	rt, err := fcrt.Start(fcrt.Function{
		Name:   "hello",
		Binary: fcrt.BuiltFunction("hello"), // go build -o <dir>/hello ./testdata/hello
		Region: "cn-hangzhou",
		// The local cloud issues real STS tokens for the function's role here.
		Credentials: func(context.Context) (fcrt.Credentials, error) {
			return fcrt.Credentials{AccessKeyID: "STS.example", AccessKeySecret: "secret", SecurityToken: "token"}, nil
		},
		Logs: os.Stderr,
	})
	if err != nil {
		log.Fatal(err)
	}
	defer rt.Close()

	res, err := rt.Invoke(context.Background(), []byte(`{}`))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(string(res.Payload), res.Error == nil, res.ColdStart)

	res, err = rt.Invoke(context.Background(), []byte(`{}`))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(string(res.Payload), res.Error == nil, res.ColdStart)
	// Output:
	// "hello" true true
	// "hello" true false
}

// An asynchronous invocation that keeps failing is retried, then its destination record goes
// to the onFailure destination (in the local cloud, an MNS queue).
func ExampleRuntime_InvokeAsync() {
	records := make(chan []byte, 1)
	rt, err := fcrt.Start(fcrt.Function{
		Name:      "eni-attacher",
		Region:    "cn-hangzhou",
		AccountID: "1234567890",
		Binary:    fcrt.BuiltFunction("probe"),
		Async: fcrt.AsyncConfig{
			MaxRetryAttempts: 2,
			Backoff:          func(int) time.Duration { return time.Millisecond }, // FC's is 0.5 s, 1 s, ...
			OnFailure: fcrt.DestinationFunc(func(_ context.Context, body []byte) error {
				records <- body
				return nil
			}),
		},
	})
	if err != nil {
		log.Fatal(err)
	}
	defer rt.Close()

	rt.InvokeAsync([]byte(`{"op":"fail","message":"no ENI available"}`))
	if err := rt.Wait(context.Background()); err != nil {
		log.Fatal(err)
	}
	var rec fcrt.DestinationRecord
	if err := json.Unmarshal(<-records, &rec); err != nil {
		log.Fatal(err)
	}
	fmt.Println(rec.RequestContext.FunctionArn)
	fmt.Println(rec.RequestContext.Condition, rec.RequestContext.ApproximateInvokeCount)
	fmt.Println(rec.RequestPayload)
	fmt.Println(rec.ResponseContext.FunctionError, rec.ResponsePayload)
	// Output:
	// acs:fc:cn-hangzhou:1234567890:functions/eni-attacher
	// RetriesExhausted 3
	// {"op":"fail","message":"no ENI available"}
	// UnhandledInvocationError {"errorMessage":"no ENI available","errorType":"errorString"}
}
