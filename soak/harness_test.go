package soak

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/enipool/enipool/internal/testbed"
	"github.com/enipool/enipool/localcloud"
	"github.com/enipool/enipool/localcloud/world"
)

// What every world of this package uses: the generated world's region, pool tag and queue.
const (
	tagKey = "enipool"
	pool   = "web"
	region = "cn-hangzhou"
	dlq    = "enipool-dlq"
)

// binDir is where TestMain builds the function, derived from the test process's pid so
// that no package-level variable is needed.
func binDir() string {
	return filepath.Join(os.TempDir(), fmt.Sprintf("enipool-soak-%d", os.Getpid()))
}

// functionBinary is the function built by TestMain (without -race: it is the production
// binary; only the test process, which runs the cloud and the FC runtime, has the race
// detector).
func functionBinary() string { return filepath.Join(binDir(), "main") }

func TestMain(m *testing.M) { os.Exit(runTests(m)) }

// skipShort skips a soak test under -short: they need the built function and minutes.
func skipShort(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("soak: skipped with -short (make unit)")
	}
}

func runTests(m *testing.M) int {
	flag.Parse()
	if testing.Short() && !shortSoak() {
		return m.Run() // the tests skip themselves: -short (make unit) runs no soak
	}
	dir := binDir()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	bin, err := testbed.BuildFunction(ctx, dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if bin != functionBinary() {
		fmt.Fprintf(os.Stderr, "function built at %s, expected %s\n", bin, functionBinary())
		return 1
	}
	return m.Run()
}

// outcomeLine is the structured log line the function writes for every outcome.
type outcomeLine struct {
	Msg          string `json:"msg"`
	Outcome      string `json:"outcome"`
	InstanceID   string `json:"instanceId"`
	ENI          string `json:"networkInterfaceId"`
	Code         string `json:"code"`
	Reason       string `json:"reason"`
	FCRequestID  string `json:"fcRequestId"`
	DeadLetterID string `json:"deadLetterMessageId"`
	Source       string `json:"source"`
	EventID      string `json:"eventId"`
}

// outcomeLines returns the outcome lines of the function's output, in order.
func outcomeLines(logs string) []outcomeLine {
	var out []outcomeLine
	for line := range strings.SplitSeq(logs, "\n") {
		i := strings.IndexByte(line, '{')
		if i < 0 || !strings.Contains(line, `"outcome"`) {
			continue
		}
		var l outcomeLine
		if json.Unmarshal([]byte(line[i:]), &l) == nil && strings.HasPrefix(l.Msg, "enipool.") && l.Outcome != "" {
			out = append(out, l)
		}
	}
	return out
}

// terminal reports whether an outcome ends an event (as opposed to handing it back to the
// platform: retry, or failed when its dead letter could not be sent).
func terminal(outcome string) bool {
	switch outcome {
	case "attached", "already-attached", "detached", "completed", "skipped", "dead-lettered":
		return true
	}
	return false
}

// readDLQ reads the soak's dead-letter queue (testbed.DeadLetters): the function's
// envelopes and FC's destination records; a message that is neither has both nil and is
// reported by the caller.
func readDLQ(c *localcloud.Cloud) []testbed.Letter { return testbed.DeadLetters(c, dlq) }

// eligibility says which pool an instance may take ENIs from ("" for none) as the cloud
// sees it now.
func eligibility(in world.Instance) string {
	if in.Released || in.OwnerID != "" {
		return ""
	}
	return in.Tags[tagKey]
}

// placementViolations checks invariant 1 on the cloud's current state: every secondary ENI
// bound to an instance (Attaching, InUse or Detaching) carries a pool tag and sits on an
// instance eligible for that very pool, in its VPC; no ENI of baseline that was not bound to an
// instance at the start is bound to one now unless it is a pool ENI. baseline maps ENI ids
// to the instance they were bound to at the start ("" for none): ENIs the world placed
// itself (outside any pool) are left out of the check.
func placementViolations(c *localcloud.Cloud, baseline map[string]string) []string {
	var v []string
	insts := map[string]world.Instance{}
	for _, in := range c.Store.Instances() {
		insts[in.ID] = in
	}
	for _, e := range c.Store.ENIs() {
		if e.Type == world.ENIPrimary || e.InstanceID == "" {
			continue
		}
		if was, ok := baseline[e.ID]; ok && was == e.InstanceID && was != "" {
			continue // placed by the world, not by the function
		}
		p := e.Tags[tagKey]
		in, ok := insts[e.InstanceID]
		switch {
		case p == "":
			v = append(v, fmt.Sprintf("ENI %s, outside every pool, is %s on %s", e.ID, e.Status, e.InstanceID))
		case !ok:
			v = append(v, fmt.Sprintf("pool ENI %s is %s on unknown instance %s", e.ID, e.Status, e.InstanceID))
		case eligibility(in) != p:
			v = append(v, fmt.Sprintf("ENI %s of pool %q is %s on %s, which is eligible for pool %q", e.ID, p, e.Status, in.ID, eligibility(in)))
		}
	}
	return v
}

// baselineOf records where every ENI is bound at the start.
func baselineOf(c *localcloud.Cloud) map[string]string {
	out := map[string]string{}
	for _, e := range c.Store.ENIs() {
		out[e.ID] = e.InstanceID
	}
	return out
}

// doubleAttachPrefix starts every report of an ENI attached while an earlier attach of it
// still held.
const doubleAttachPrefix = "double attach: "

// historyViolations checks the whole history of the cloud. Every attach the cloud accepted
// (whether or not its answer reached the caller) must be of a pool ENI to an instance
// eligible for that pool; and an ENI must never be attached while an earlier attach of it
// still holds: every change of an ENI to Attaching starts from Available (the earlier attach
// was detached, or rolled back). The store's own records are read, not the answered calls:
// an attach or a detach whose answer was lost after it was applied counts like any other.
func historyViolations(c *localcloud.Cloud) (v []string) {
	for _, op := range c.Store.Operations() {
		if op.Op != "attach" {
			continue
		}
		e, _ := c.Store.ENI(op.ENI)
		in, _ := c.Store.Instance(op.Instance)
		if p := e.Tags[tagKey]; p == "" || eligibility(in) != p {
			v = append(v, fmt.Sprintf("attach of ENI %s (pool %q) to %s (eligible for %q) accepted at %s",
				op.ENI, p, op.Instance, eligibility(in), op.Accepted.Format(time.StampMilli)))
		}
	}
	for _, ch := range c.Store.Changes(1) {
		if ch.Kind == world.KindENI && ch.To == world.ENIAttaching && ch.From != world.ENIAvailable {
			v = append(v, fmt.Sprintf(doubleAttachPrefix+"ENI %s attached to %s at %s while %s", ch.ID, ch.Instance,
				ch.At.Format(time.StampMilli), ch.From))
		}
	}
	return v
}

// checker collects a test's failures. A test that meets a reported bug sets known: its
// failures are then logged, not failed, and the test fails once they are gone, so that the
// note is removed with the fix (see hostileCase.knownBug).
type checker struct {
	t     *testing.T
	known string
	msgs  []string
}

// Errorf fails the case, or notes the failure when the case has a known bug.
func (c *checker) Errorf(format string, args ...any) {
	c.t.Helper()
	if c.known == "" {
		c.t.Errorf(format, args...)
		return
	}
	c.msgs = append(c.msgs, fmt.Sprintf(format, args...))
}

func (c *checker) done() {
	switch {
	case c.known == "":
	case len(c.msgs) == 0:
		c.t.Errorf("the known bug is gone; remove the case's knownBug: %s", c.known)
	default:
		c.t.Logf("KNOWN BUG, reported, not failed: %s\n  %s", c.known, strings.Join(c.msgs, "\n  "))
	}
}

// settle waits until no ENI is Attaching or Detaching (each lasts the world's timing), so
// that the state is at rest. It gives up after limit and returns the ENIs still moving.
func settle(c *localcloud.Cloud, limit time.Duration) []string {
	deadline := time.Now().Add(limit)
	for {
		var moving []string
		for _, e := range c.Store.ENIs(world.WithStatus(world.ENIAttaching, world.ENIDetaching)) {
			moving = append(moving, e.ID+" "+e.Status)
		}
		if len(moving) == 0 || time.Now().After(deadline) {
			return moving
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// clip shortens text for a failure message.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + fmt.Sprintf("... (%d bytes)", len(s))
}

// firstN returns at most n items, for failure messages that could be long.
func firstN(items []string, n int) string {
	if len(items) <= n {
		return strings.Join(items, "\n  ")
	}
	return strings.Join(items[:n], "\n  ") + fmt.Sprintf("\n  ... and %d more", len(items)-n)
}
