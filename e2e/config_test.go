package e2e

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/enipool/enipool/internal/testbed"
	"github.com/enipool/enipool/localcloud"
)

// A configuration that cannot work is refused when the function starts, with a message naming
// the variables, and no invocation runs under it. Fails on ca38816: the function started and
// every invocation ran with a work deadline already past (reserve 30 s, timeout 20 s).
func TestConfigRefusedAtStart(t *testing.T) {
	t.Parallel()
	if binary == "" {
		t.Skip("end-to-end test: skipped with -short")
	}
	c, err := localcloud.Start(newWorld(t, spec{}), localcloud.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	logs := &testbed.LogBuffer{}
	fn, err := testbed.StartFunction(c, testbed.Function{Binary: binary, DeadLetterQueue: dlq, Timeout: 20 * time.Second, Logs: logs,
		Env: map[string]string{"ENIPOOL_DLQ_RESERVE": "30s", "ENIPOOL_FUNCTION_TIMEOUT": "20"}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	res, err := fn.Invoke(ctx, []byte(direct("i-bp1config000001")))
	fn.Close()
	if err == nil && res.Error == nil {
		t.Fatalf("the invocation succeeded under a configuration that leaves no time: %s", res.Payload)
	}
	out := logs.String()
	for _, name := range []string{"configuration error", "ENIPOOL_DLQ_RESERVE", "ENIPOOL_FUNCTION_TIMEOUT"} {
		if !strings.Contains(out, name) {
			t.Errorf("the function's output does not name %q:\n%s", name, clipLog(out))
		}
	}
	if n := c.Calls.Count("ecs", "DescribeInstances"); n != 0 {
		t.Errorf("%d DescribeInstances calls under a refused configuration", n)
	}
}
