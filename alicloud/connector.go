// Package alicloud implements the handler's cloud interfaces with Alibaba Cloud's SDKs:
// alibaba-cloud-sdk-go for ECS and Auto Scaling (ESS), aliyun-mns-go-sdk for the MNS
// dead-letter queue, and credentials-go for credentials outside Function Compute.
//
// No SDK type crosses into the handler: failures come back as *handler.APIError, with any
// secret scrubbed from their messages (signature errors echo the signed query, which holds
// the security token; transport errors echo the request URL).
package alicloud

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/enipool/enipool/cloud"
)

// Options configure the clients. Empty endpoint fields take the public defaults.
type Options struct {
	// ECSEndpoint is the ECS API host[:port]. Default ecs.{region}.aliyuncs.com; inside a
	// VPC, ecs-vpc.{region}.aliyuncs.com keeps traffic off the Internet.
	ECSEndpoint string
	// ESSEndpoint is the Auto Scaling API host[:port]. Default ess.{region}.aliyuncs.com.
	ESSEndpoint string
	// Scheme is "https" (default) or "http" (only for the local cloud).
	Scheme string
	// MNSEndpoint is the MNS endpoint URL. "{account}" and "{region}" are replaced. Default
	// https://{account}.mns.{region}.aliyuncs.com; in a VPC,
	// http://{account}.mns.{region}-internal.aliyuncs.com.
	MNSEndpoint string
	// MNSDialAddr, when set, sends MNS requests to this host:port instead of the endpoint's
	// resolved address, without changing what is sent (Host header, path, signature). The
	// MNS SDK refuses endpoints that are not of the {account}.mns.{region}.aliyuncs.com form,
	// so this is how it reaches the local cloud on loopback.
	MNSDialAddr string
	// DeadLetterQueue is the MNS queue name dead letters go to.
	DeadLetterQueue string
	// ConnectTimeout and ReadTimeout bound each API request; a context deadline that comes
	// sooner bounds it further.
	ConnectTimeout time.Duration
	ReadTimeout    time.Duration
}

// Connector hands the handler clients for a session. It keeps one set of clients per region
// and rebuilds them when the session's credentials change (FC hands every invocation a fresh
// STS token, which changes when FC rotates it). Safe for concurrent use.
type Connector struct {
	opts Options

	mu       sync.Mutex
	sessions map[string]*session // by region
}

type session struct {
	key     cloud.Session
	clients *cloud.Clients
}

// NewConnector checks opts and returns a Connector.
func NewConnector(opts Options) (*Connector, error) {
	if opts.Scheme == "" {
		opts.Scheme = "https"
	}
	opts.Scheme = strings.ToLower(opts.Scheme)
	if opts.Scheme != "https" && opts.Scheme != "http" {
		return nil, fmt.Errorf("alicloud: scheme %q is neither https nor http", opts.Scheme)
	}
	if opts.DeadLetterQueue == "" {
		return nil, errors.New("alicloud: no dead-letter queue name")
	}
	if opts.ConnectTimeout <= 0 {
		opts.ConnectTimeout = 3 * time.Second
	}
	if opts.ReadTimeout <= 0 {
		opts.ReadTimeout = 10 * time.Second
	}
	return &Connector{opts: opts, sessions: make(map[string]*session)}, nil
}

// Connect returns the clients for s, building them if s is new.
func (c *Connector) Connect(ctx context.Context, s cloud.Session) (*cloud.Clients, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if s.Region == "" {
		return nil, errors.New("alicloud: session without a region")
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if cur, ok := c.sessions[s.Region]; ok && cur.key == s {
		return cur.clients, nil
	}
	creds, err := newCredentials(s.Credentials)
	if err != nil {
		return nil, err
	}
	ecsClient := newECS(c.opts, s.Region, creds)
	essClient := newESS(c.opts, s.Region, creds)
	dlq, err := newDeadLetters(c.opts, s, creds)
	if err != nil {
		return nil, err
	}
	clients := &cloud.Clients{ECS: ecsClient, Lifecycle: essClient, DeadLetters: dlq}
	c.sessions[s.Region] = &session{key: s, clients: clients}
	return clients, nil
}

// endpointFor returns the configured endpoint, or the default with the region filled in.
func endpointFor(configured, def, region string) string {
	if configured != "" {
		return configured
	}
	return fmt.Sprintf(def, region)
}

// deadlineTimeout returns the read timeout for a request made under ctx.
func deadlineTimeout(ctx context.Context, max time.Duration) (time.Duration, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	if dl, ok := ctx.Deadline(); ok {
		left := time.Until(dl)
		if left <= 0 {
			return 0, context.DeadlineExceeded
		}
		return min(left, max), nil
	}
	return max, nil
}
