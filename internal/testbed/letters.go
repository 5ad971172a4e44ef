package testbed

import (
	"strings"

	"github.com/enipool/enipool/deadletter"
	"github.com/enipool/enipool/localcloud"
)

// Letter is one message of a dead-letter queue, parsed: the function's envelope, FC's
// onFailure destination record, or neither (both nil: the caller decides whether that is a
// failure).
type Letter struct {
	ID       string
	Body     []byte
	Envelope *deadletter.Envelope
	Record   *deadletter.FCRecord
}

// DeadLetters returns every message of queue in c, parsed, in queue order.
func DeadLetters(c *localcloud.Cloud, queue string) []Letter {
	var out []Letter
	for _, m := range c.MNS.Messages(queue) {
		l := Letter{ID: m.ID, Body: m.Body}
		if env, err := deadletter.Parse(m.Body); err == nil {
			l.Envelope = env
		} else if !deadletter.IsEnvelope(m.Body) {
			// Not a broken envelope: FC's record, or junk.
			l.Record, _ = deadletter.ParseFCDestinationRecord(m.Body)
		}
		out = append(out, l)
	}
	return out
}

// Envelopes returns the function's envelopes in queue, in order; FC's records and anything
// else are left out.
func Envelopes(c *localcloud.Cloud, queue string) []*deadletter.Envelope {
	var out []*deadletter.Envelope
	for _, l := range DeadLetters(c, queue) {
		if l.Envelope != nil {
			out = append(out, l.Envelope)
		}
	}
	return out
}

// SecretsIn returns how many of the secrets c ever issued (AccessKey secrets, STS secrets
// and tokens) appear in texts. Strings shorter than 8 bytes are not counted: they would match
// by chance.
func SecretsIn(c *localcloud.Cloud, texts ...string) int {
	n := 0
	for _, s := range c.Keys.Secrets() {
		if len(s) < 8 {
			continue
		}
		for _, t := range texts {
			if strings.Contains(t, s) {
				n++
				break
			}
		}
	}
	return n
}

// QueueText is every message of every queue of c, as one text, for SecretsIn.
func QueueText(c *localcloud.Cloud) string {
	var b strings.Builder
	for _, q := range c.MNS.Queues() {
		for _, m := range c.MNS.Messages(q) {
			b.Write(m.Body)
			b.WriteByte('\n')
		}
	}
	return b.String()
}
