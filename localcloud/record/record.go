// Package record keeps the local cloud's log of API calls: every request any service
// answered, with its parameters (secrets removed), outcome and latency. Tests read it to
// assert what the function did; benchmarks count calls from it.
package record

import (
	"net/url"
	"sort"
	"strings"
	"sync"
	"time"
)

// Call is one answered API request.
type Call struct {
	Seq        int64             `json:"seq"`
	Time       time.Time         `json:"time"`
	Service    string            `json:"service"` // "ecs", "ess", "mns", "fc"
	Action     string            `json:"action"`
	Principal  string            `json:"principal,omitempty"`
	Params     map[string]string `json:"params,omitempty"`
	RequestID  string            `json:"requestId,omitempty"`
	HTTPStatus int               `json:"httpStatus"`
	Code       string            `json:"code,omitempty"` // error code; empty on success
	Fault      string            `json:"fault,omitempty"`
	Latency    time.Duration     `json:"latencyNs"`
}

// OK reports whether the call succeeded.
func (c Call) OK() bool { return c.Code == "" && c.HTTPStatus < 300 }

// Recorder is a concurrency-safe, append-only call log. The zero value is ready to use.
type Recorder struct {
	mu    sync.Mutex
	seq   int64
	calls []Call
}

// Add appends c, assigning its sequence number, and returns it.
func (r *Recorder) Add(c Call) Call {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.seq++
	c.Seq = r.seq
	r.calls = append(r.calls, c)
	return c
}

// Calls returns a copy of the log, oldest first, keeping the calls for which every filter
// returns true.
func (r *Recorder) Calls(filters ...func(Call) bool) []Call {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]Call, 0, len(r.calls))
next:
	for _, c := range r.calls {
		for _, f := range filters {
			if !f(c) {
				continue next
			}
		}
		out = append(out, c)
	}
	return out
}

// Count returns how many calls match service and action; an empty string matches any.
func (r *Recorder) Count(service, action string) int {
	return len(r.Calls(Match(service, action)))
}

// Reset forgets every call.
func (r *Recorder) Reset() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls = nil
}

// Match is a filter for Calls selecting a service and action; an empty string matches any.
func Match(service, action string) func(Call) bool {
	return func(c Call) bool {
		return (service == "" || c.Service == service) && (action == "" || c.Action == action)
	}
}

// Redact flattens params into one value per name, dropping every secret.
func Redact(params url.Values) map[string]string {
	out := make(map[string]string, len(params))
	for k, vs := range params {
		if isSecret(k) || len(vs) == 0 {
			continue
		}
		out[k] = strings.Join(vs, ",")
	}
	return out
}

// isSecret says which parameters are never recorded. AccessKeyId stays: it identifies, it
// does not authorize.
func isSecret(name string) bool {
	switch strings.ToLower(name) {
	case "signature", "securitytoken", "accesskeysecret", "security-token", "authorization":
		return true
	}
	return false
}

// Summary counts calls by "service:action" and outcome code ("" for success), for printing.
func Summary(calls []Call) []Count {
	m := map[[3]string]int{}
	for _, c := range calls {
		m[[3]string{c.Service, c.Action, c.Code}]++
	}
	out := make([]Count, 0, len(m))
	for k, n := range m {
		out = append(out, Count{Service: k[0], Action: k[1], Code: k[2], N: n})
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.Service != b.Service {
			return a.Service < b.Service
		}
		if a.Action != b.Action {
			return a.Action < b.Action
		}
		return a.Code < b.Code
	})
	return out
}

// Count is one row of Summary.
type Count struct {
	Service, Action, Code string
	N                     int
}
