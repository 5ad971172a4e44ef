package alicloud

import (
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"strings"

	sdkcreds "github.com/aliyun/alibaba-cloud-sdk-go/sdk/auth/credentials"
	credentials "github.com/aliyun/credentials-go/credentials"

	"github.com/enipool/enipool/cloud"
)

// creds is one session's credentials, usable by both SDK generations: the invocation's STS
// triple in FC, else the credentials-go default chain (environment, profile, ECS RAM role).
type creds struct {
	static cloud.Credentials // zero when the chain is used
	chain  credentials.Credential
}

func newCredentials(c cloud.Credentials) (*creds, error) {
	if !c.IsZero() {
		if c.AccessKeyID == "" || c.AccessKeySecret == "" {
			return nil, errors.New("alicloud: incomplete credentials: AccessKeyId and AccessKeySecret are both needed")
		}
		return &creds{static: c}, nil
	}
	chain, err := credentials.NewCredential(nil)
	if err != nil {
		return nil, fmt.Errorf("alicloud: no credentials from the invocation and none from the default chain: %w", err)
	}
	return &creds{chain: chain}, nil
}

// GetCredentials implements alibaba-cloud-sdk-go's CredentialsProvider; the SDK calls it for
// every request.
func (c *creds) GetCredentials() (*sdkcreds.Credentials, error) {
	if c.chain == nil {
		return &sdkcreds.Credentials{
			AccessKeyId:     c.static.AccessKeyID,
			AccessKeySecret: c.static.AccessKeySecret,
			SecurityToken:   c.static.SecurityToken,
			ProviderName:    c.GetProviderName(),
		}, nil
	}
	m, err := c.chain.GetCredential()
	if err != nil {
		return nil, fmt.Errorf("alicloud: default credentials chain: %w", err)
	}
	out := &sdkcreds.Credentials{ProviderName: c.GetProviderName()}
	if m.AccessKeyId != nil {
		out.AccessKeyId = *m.AccessKeyId
	}
	if m.AccessKeySecret != nil {
		out.AccessKeySecret = *m.AccessKeySecret
	}
	if m.SecurityToken != nil {
		out.SecurityToken = *m.SecurityToken
	}
	return out, nil
}

// GetProviderName implements alibaba-cloud-sdk-go's CredentialsProvider.
func (c *creds) GetProviderName() string {
	if c.chain == nil {
		return "enipool/fc-invocation"
	}
	return "enipool/credentials-go"
}

// secrets returns the values that must never appear in a message: the secret and the token,
// raw and URL-encoded.
func (c *creds) secrets() []string {
	var vals []string
	if c.chain == nil {
		vals = []string{c.static.AccessKeySecret, c.static.SecurityToken}
	} else if m, err := c.chain.GetCredential(); err == nil {
		for _, p := range []*string{m.AccessKeySecret, m.SecurityToken} {
			if p != nil {
				vals = append(vals, *p)
			}
		}
	}
	return encodings(vals)
}

// encodings returns each value of vals, raw and URL-encoded once and twice (a string to sign
// encodes the query again); values shorter than 4 bytes are left out, as replacing them
// would shred the message and hide nothing.
func encodings(vals []string) []string {
	var out []string
	for _, v := range vals {
		if len(v) >= 4 {
			out = append(out, v, url.QueryEscape(v), url.QueryEscape(url.QueryEscape(v)))
		}
	}
	return out
}

// signedParams matches secret-bearing parameters in query strings and strings-to-sign, raw
// and percent-encoded once or twice (a string-to-sign encodes the query again). A lifecycle
// action token is one: whoever holds it may complete the action (README, "Quiet").
var signedParams = regexp.MustCompile(`(?i)(SecurityToken|Signature|AccessKeySecret|LifecycleActionToken)(=|%3D|%253D)[^&\s"',;]*`)

// scrub removes secrets from s: the session's secret and token and the values in more (a
// lifecycle action token the call carried) wherever they appear, and the values of
// secret-bearing parameters, and cuts a signature error's echo of the string to sign.
func (c *creds) scrub(s string, more ...string) string {
	if i := strings.Index(s, "server string to sign is:"); i >= 0 {
		s = s[:i] + "server string to sign is: [redacted]"
	}
	s = signedParams.ReplaceAllString(s, "$1$2[redacted]")
	for _, v := range append(c.secrets(), encodings(more)...) {
		s = strings.ReplaceAll(s, v, "[redacted]")
	}
	return s
}

// scrubbedError carries a scrubbed message and keeps the cause for errors.Is/As (the cause is
// the inner network error, whose text names no URL).
type scrubbedError struct {
	msg   string
	cause error
}

func (e *scrubbedError) Error() string { return e.msg }
func (e *scrubbedError) Unwrap() error { return e.cause }

// transportError turns a failed request into an error that names no secret (nor any value
// of more): a *url.Error prints the whole request URL, query and signature included.
func (c *creds) transportError(err error, more ...string) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		host := ""
		if u, perr := url.Parse(ue.URL); perr == nil {
			host = u.Host
		}
		return &scrubbedError{msg: c.scrub(fmt.Sprintf("%s %s: %v", ue.Op, host, ue.Err), more...), cause: ue.Err}
	}
	return &scrubbedError{msg: c.scrub(err.Error(), more...), cause: errors.Unwrap(err)}
}
