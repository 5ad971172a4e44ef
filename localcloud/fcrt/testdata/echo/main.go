// Command echo is the function the trigger tests run: it records every payload it is handed,
// exactly as the runtime API delivered it, so that a test can compare what a trigger delivers
// with the platform's published samples.
//
// Each invocation writes its payload to a new file in $ECHO_DIR named after the request id
// (<request id>-<random>.json) before it returns, so the file exists once the invocation has
// finished; retries of one request get one file each. If $ECHO_FAIL is set and the payload
// contains it, the invocation fails after recording, so that tests can drive retries, dead
// letters and destinations. The response is the payload itself.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"

	"github.com/aliyun/fc-runtime-go-sdk/fc"
	"github.com/aliyun/fc-runtime-go-sdk/fccontext"
)

func handle(ctx context.Context, payload json.RawMessage) (json.RawMessage, error) {
	lc, ok := fccontext.FromContext(ctx)
	if !ok {
		return nil, errors.New("echo: no fccontext")
	}
	dir := os.Getenv("ECHO_DIR")
	if dir == "" {
		return nil, errors.New("echo: ECHO_DIR is not set")
	}
	f, err := os.CreateTemp(dir, lc.RequestID+"-*.json")
	if err != nil {
		return nil, fmt.Errorf("echo: %w", err)
	}
	_, werr := f.Write(payload)
	if err := errors.Join(werr, f.Close()); err != nil {
		return nil, fmt.Errorf("echo: %w", err)
	}
	if s := os.Getenv("ECHO_FAIL"); s != "" && bytes.Contains(payload, []byte(s)) {
		return nil, fmt.Errorf("echo: payload contains %q", s)
	}
	return payload, nil
}

func main() { fc.Start(handle) }
