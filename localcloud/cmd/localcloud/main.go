// Command localcloud runs the local cloud standalone (package localcloud: ECS, ESS and MNS on
// loopback) until Ctrl-C, and prints its endpoints and the credentials of the world's
// principals, for any program that speaks the Alibaba Cloud SDKs.
//
//	localcloud [-world FILE] [-ecs ADDR] [-ess ADDR] [-mns ADDR] [-debug ADDR]
//
// It runs no function: enipool's demo (internal/cmd/demo, `make localcloud`) does that.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/enipool/enipool/localcloud"
	"github.com/enipool/enipool/localcloud/auth"
	"github.com/enipool/enipool/localcloud/world"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := serve(ctx, os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "localcloud:", err)
		os.Exit(1)
	}
}

func serve(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("localcloud", flag.ExitOnError)
	worldFile := fs.String("world", "localcloud/worlds/demo.yaml", "world file")
	var o localcloud.Options
	fs.StringVar(&o.ECSAddr, "ecs", "127.0.0.1:0", "ECS listen address")
	fs.StringVar(&o.ESSAddr, "ess", "127.0.0.1:0", "ESS listen address")
	fs.StringVar(&o.MNSAddr, "mns", "127.0.0.1:0", "MNS listen address")
	fs.StringVar(&o.DebugAddr, "debug", "127.0.0.1:0", "debug endpoint listen address")
	fs.BoolVar(&o.TLS, "tls", false, "serve ECS, ESS and MNS over HTTPS (a CA made at start; its file is printed)")
	fs.Parse(args)
	w, err := world.Load(*worldFile)
	if err != nil {
		return err
	}
	c, err := localcloud.Start(w, o)
	if err != nil {
		return err
	}
	defer c.Close()
	fmt.Fprintf(out, "local cloud up: world %s, region %s, account %s\n\n", *worldFile, c.Region, c.AccountID)
	fmt.Fprintf(out, "  ECS    %s://%s   (SDK: client.Domain=%q, scheme %s)\n", c.Scheme, c.ECSEndpoint, c.ECSEndpoint, strings.ToUpper(c.Scheme))
	fmt.Fprintf(out, "  ESS    %s://%s\n", c.Scheme, c.ESSEndpoint)
	fmt.Fprintf(out, "  MNS    %s, dialled at %s (install a transport that dials it; see package localcloud)\n", c.MNSEndpoint, c.MNSAddr)
	fmt.Fprintf(out, "  state  %s/state   calls  %s/calls\n", c.DebugURL, c.DebugURL)
	if c.CAFile != "" {
		fmt.Fprintf(out, "  CA     %s   (trust it: SSL_CERT_FILE=%s)\n", c.CAFile, c.CAFile)
	}
	fmt.Fprintln(out)
	if k, err := c.RootKey(); err == nil {
		fmt.Fprintf(out, "  account AccessKey: %s / %s (local only)\n", k.ID, k.Secret)
	}
	for _, p := range w.Principals {
		if p.Kind != auth.KindRole {
			continue
		}
		if k, err := c.AssumeRole(p.Name, 12*time.Hour); err == nil {
			fmt.Fprintf(out, "  role %s STS (12h): ALIBABA_CLOUD_ACCESS_KEY_ID=%s ALIBABA_CLOUD_ACCESS_KEY_SECRET=%s ALIBABA_CLOUD_SECURITY_TOKEN=%s\n",
				p.Name, k.ID, k.Secret, k.Token)
		}
	}
	fmt.Fprintln(out, "\nCtrl-C stops it.")
	<-ctx.Done()
	fmt.Fprintln(out, "\nstopping")
	return nil
}
