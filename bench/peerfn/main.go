// Command peerfn is the benchmark's peer function: a Function Compute go1 function, built and
// run under the local FC runtime exactly as enipool is, that handles an EventBridge ECS
// Running event with one of the peers' confirmation policies (package bench/internal/peer),
// chosen by BENCH_PEER_POLICY. It reads the same ENIPOOL_* configuration as enipool (the
// endpoints, the pool tag key) and talks to ECS through the same SDK adapter, so that the
// peers and enipool differ only in what they do.
//
// BENCH_PEER_SCALE, when set, multiplies the policy's durations (the harness's quick
// correctness test runs the schedules ten times faster on a world ten times faster).
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strconv"

	"github.com/aliyun/fc-runtime-go-sdk/fc"
	"github.com/aliyun/fc-runtime-go-sdk/fccontext"

	"github.com/enipool/enipool/alicloud"
	"github.com/enipool/enipool/bench/internal/peer"
	"github.com/enipool/enipool/cloud"
	"github.com/enipool/enipool/config"
)

func main() {
	cfg, err := config.Load(os.Getenv)
	if err != nil {
		fmt.Fprintf(os.Stderr, "peerfn: configuration error:\n%v\n", err)
		os.Exit(2)
	}
	pol, ok := peer.ByName(os.Getenv("BENCH_PEER_POLICY"))
	if !ok {
		fmt.Fprintf(os.Stderr, "peerfn: BENCH_PEER_POLICY=%q names no peer\n", os.Getenv("BENCH_PEER_POLICY"))
		os.Exit(2)
	}
	if s := os.Getenv("BENCH_PEER_SCALE"); s != "" {
		f, err := strconv.ParseFloat(s, 64)
		if err != nil || f <= 0 {
			fmt.Fprintf(os.Stderr, "peerfn: BENCH_PEER_SCALE=%q is not a positive number\n", s)
			os.Exit(2)
		}
		pol = pol.Scaled(f)
	}
	conn, err := alicloud.NewConnector(cfg.Cloud)
	if err != nil {
		fmt.Fprintf(os.Stderr, "peerfn: %v\n", err)
		os.Exit(2)
	}
	fc.Start(func(ctx context.Context, payload []byte) (*peer.Result, error) {
		var ev struct {
			Data struct {
				ResourceID string `json:"resourceId"`
			} `json:"data"`
		}
		if err := json.Unmarshal(payload, &ev); err != nil || ev.Data.ResourceID == "" {
			return nil, fmt.Errorf("peerfn: not an ECS instance event: %.200s", payload)
		}
		s := cloud.Session{Region: cfg.Handler.Region, AccountID: cfg.AccountID}
		if fcc, ok := fccontext.FromContext(ctx); ok {
			s.Region, s.AccountID = fcc.Region, fcc.AccountId
			s.Credentials = cloud.Credentials{AccessKeyID: fcc.Credentials.AccessKeyId,
				AccessKeySecret: fcc.Credentials.AccessKeySecret, SecurityToken: fcc.Credentials.SecurityToken}
		}
		clients, err := conn.Connect(ctx, s)
		if err != nil {
			return nil, err
		}
		a := peer.Attacher{ECS: clients.ECS, TagKey: cfg.Handler.TagKey, Policy: pol}
		r, err := a.Attach(ctx, ev.Data.ResourceID)
		if err != nil {
			return nil, fmt.Errorf("%w (%d calls, %d throttled, %d lost races)", err, r.Calls, r.Throttled, r.LostRaces)
		}
		return &r, nil
	})
}
