// Command enipool is the Function Compute function (runtime go1, handler "main") that gives
// every launching ECS instance an ENI from a pool of pre-created, tagged ENIs.
//
// Under FC it serves invocations through fc-runtime-go-sdk. Outside FC (FC_RUNTIME_API unset)
// it handles one event, from the file named as its argument or from standard input, with the
// credentials-go default chain, and prints the JSON result:
//
//	ENIPOOL_DLQ_QUEUE=enipool-dlq ENIPOOL_REGION=cn-hangzhou ENIPOOL_ACCOUNT_ID=... ./main events/direct.json
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"

	"github.com/aliyun/fc-runtime-go-sdk/fc"
	"github.com/aliyun/fc-runtime-go-sdk/fccontext"

	"github.com/enipool/enipool/alicloud"
	"github.com/enipool/enipool/cloud"
	"github.com/enipool/enipool/config"
	"github.com/enipool/enipool/handler"
)

func main() {
	cfg, err := config.Load(os.Getenv)
	if err != nil {
		fmt.Fprintf(os.Stderr, "enipool: configuration error:\n%v\n", err)
		os.Exit(2)
	}
	cfg.Handler.Logger = slog.New(slog.NewJSONHandler(os.Stdout, &slog.HandlerOptions{Level: cfg.LogLevel}))
	conn, err := alicloud.NewConnector(cfg.Cloud)
	if err != nil {
		fmt.Fprintf(os.Stderr, "enipool: %v\n", err)
		os.Exit(2)
	}
	h, err := handler.New(cfg.Handler, conn)
	if err != nil {
		fmt.Fprintf(os.Stderr, "enipool: %v\n", err)
		os.Exit(2)
	}
	if os.Getenv("FC_RUNTIME_API") == "" {
		os.Exit(runOnce(h, cfg))
	}
	fc.Start(func(ctx context.Context, payload []byte) (*handler.Response, error) {
		return h.Invoke(ctx, invocation(ctx, cfg), payload)
	})
}

// invocation reads what FC says about this invocation. FromContext is called once: it
// writes to the shared context value.
func invocation(ctx context.Context, cfg config.Config) handler.Invocation {
	inv := handler.Invocation{Region: cfg.Handler.Region, AccountID: cfg.AccountID}
	if fcc, ok := fccontext.FromContext(ctx); ok {
		inv.RequestID = fcc.RequestID
		inv.FunctionName = fcc.Function.Name
		inv.RetryCount = fcc.RetryCount
		inv.Region = firstNonEmpty(fcc.Region, inv.Region)
		inv.AccountID = firstNonEmpty(fcc.AccountId, inv.AccountID)
		inv.Credentials = cloud.Credentials{
			AccessKeyID:     fcc.Credentials.AccessKeyId,
			AccessKeySecret: fcc.Credentials.AccessKeySecret,
			SecurityToken:   fcc.Credentials.SecurityToken,
		}
	}
	return inv
}

// runOnce handles one event outside FC and returns the exit code.
func runOnce(h *handler.Handler, cfg config.Config) int {
	in := io.Reader(os.Stdin)
	if len(os.Args) > 1 {
		f, err := os.Open(os.Args[1])
		if err != nil {
			fmt.Fprintf(os.Stderr, "enipool: %v\n", err)
			return 2
		}
		defer f.Close()
		in = f
	}
	payload, err := io.ReadAll(in)
	if err != nil {
		fmt.Fprintf(os.Stderr, "enipool: reading the event: %v\n", err)
		return 2
	}
	resp, err := h.Invoke(context.Background(), invocation(context.Background(), cfg), payload)
	out, _ := json.MarshalIndent(resp, "", "  ")
	fmt.Println(string(out))
	if err != nil {
		fmt.Fprintf(os.Stderr, "enipool: %v\n", err)
		var ie *handler.InvocationError
		if errors.As(err, &ie) {
			return 1
		}
		return 2
	}
	return 0
}

func firstNonEmpty(a, b string) string {
	if a != "" {
		return a
	}
	return b
}
