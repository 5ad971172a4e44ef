package soak

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/enipool/enipool/cloud"
	"github.com/enipool/enipool/deadletter"
	"github.com/enipool/enipool/engine"
	"github.com/enipool/enipool/event"
	"github.com/enipool/enipool/handler"
	"github.com/enipool/enipool/internal/testbed"
	"github.com/enipool/enipool/localcloud"
	"github.com/enipool/enipool/localcloud/fcrt"
	"github.com/enipool/enipool/localcloud/world"
)

// The hostile world: the generated pool "web" (instances i-gen000000001..8, ENIs
// eni-gen000000001..10, zones alternating h, i), and around it what a message must not be
// able to reach.
const (
	hintTarget   = "i-gen000000001" // zone h; no case may give it an ENI: every hint it gets is refused
	dbInstance   = "i-db0000000001" // pool "db", zone h
	dbENI        = "eni-dbpool00001"
	untaggedInst = "i-untagged0001"
	foreignInst  = "i-foreign00001" // another account's: invisible
	otherVPCInst = "i-othervpc0001" // pool "web", but in another VPC
	otherVPCENI  = "eni-othervpc001"
	plainENI     = "eni-plain000001" // no tag at all
	foreignENI   = "eni-foreign0001" // another account's, tagged web, not shared
	sharedENI    = "eni-shared00001" // another account's, tagged web, shared with this one
	stoppedInst  = "i-stopped00001"
	otherAccount = "9999999999999999"
)

// sharedFirst returns an instance id, in zone h, for which the handler ranks the ENI another
// account shares first among the pool's ENIs of that zone: its event meets that ENI first.
func sharedFirst() string {
	zoneH := []string{sharedENI}
	for i := 1; i <= 10; i += 2 {
		zoneH = append(zoneH, fmt.Sprintf("eni-gen%09d", i))
	}
	for i := 0; ; i++ {
		id := fmt.Sprintf("i-sharedfirst%03d", i)
		if engine.Rank(id, zoneH)[0] == sharedENI {
			return id
		}
	}
}

// hostileWorld builds the world the hostile inputs are thrown at. Its role may do anything
// in ECS, ESS and MNS (world.UnrestrictedPolicy, not the rendered policy): the subject here is
// the function's own checks, and the rendered policy's tag, region and account conditions
// would refuse many of these calls before the function's check was reached (the end-to-end
// tests, e2e/, run the function under the rendered policy).
func hostileWorld(t *testing.T) *world.World {
	t.Helper()
	w, err := world.Generate(world.GenerateOptions{Instances: 8, Pool: 10, Zones: 2, PoolValue: pool,
		Attach: 300 * time.Millisecond, Detach: 150 * time.Millisecond, FunctionPolicy: world.UnrestrictedPolicy})
	if err != nil {
		t.Fatal(err)
	}
	const vswH, sg = "vsw-gen0001", "sg-gen0001"
	w.VPCs = append(w.VPCs, world.VPC{ID: "vpc-other0001", Region: region, CIDR: "172.16.0.0/12"})
	w.VSwitches = append(w.VSwitches, world.VSwitch{ID: "vsw-otherh0001", VPC: "vpc-other0001", Zone: region + "-h", CIDR: "172.16.1.0/24"})
	w.SecurityGroups = append(w.SecurityGroups, world.SecurityGroup{ID: "sg-other0001", VPC: "vpc-other0001", MaxInstances: 100})
	inst := func(id, vsw, sg string, tags map[string]string) world.Instance {
		return world.Instance{ID: id, Type: w.InstanceTypes[0].ID, VSwitch: vsw, Status: world.StatusRunning, StartTime: world.Ago(time.Minute),
			Tags: tags, SecurityGroups: []string{sg}}
	}
	db := inst(dbInstance, vswH, sg, map[string]string{tagKey: "db"})
	untagged := inst(untaggedInst, vswH, sg, map[string]string{"team": "web"})
	foreign := inst(foreignInst, vswH, sg, map[string]string{tagKey: pool})
	foreign.OwnerID = otherAccount
	stopped := inst(stoppedInst, vswH, sg, map[string]string{tagKey: pool})
	stopped.Status = world.StatusStopped
	w.Instances = append(w.Instances, db, untagged, foreign, stopped, inst(sharedFirst(), vswH, sg, map[string]string{tagKey: pool}),
		inst(otherVPCInst, "vsw-otherh0001", "sg-other0001", map[string]string{tagKey: pool}))
	eni := func(id, vsw, sg string, tags map[string]string) world.ENI {
		return world.ENI{ID: id, VSwitch: vsw, SecurityGroups: []string{sg}, Tags: tags, CreationTime: world.Ago(time.Hour)}
	}
	foreignE := eni(foreignENI, vswH, sg, map[string]string{tagKey: pool})
	foreignE.OwnerID = otherAccount
	sharedE := eni(sharedENI, vswH, sg, map[string]string{tagKey: pool})
	sharedE.OwnerID, sharedE.SharedWithAccount = otherAccount, true
	w.ENIs = append(w.ENIs, eni(dbENI, vswH, sg, map[string]string{tagKey: "db"}), eni(plainENI, vswH, sg, nil),
		eni(otherVPCENI, "vsw-otherh0001", "sg-other0001", map[string]string{tagKey: pool}), foreignE, sharedE)
	if err := w.Validate("."); err != nil {
		t.Fatal(err)
	}
	return w
}

// hostileCase is one input and what may come of it.
type hostileCase struct {
	name    string
	payload []byte
	// outcomes every result must have one of; code, when set, is the code of every result
	// that is not a success.
	outcomes []engine.Outcome
	code     string
	reason   string // words every non-success reason must carry
	results  int    // exact number of results; 0 means at least one
	// untouched are instances that must see no attach during the case.
	untouched []string
	// knownBug, when set, names a reported bug the case meets: its failures are logged,
	// not failed, and the case fails once they are gone, so that the note is removed.
	knownBug string
}

// directTo is a direct invocation for one instance.
func directTo(inst string) string {
	return fmt.Sprintf(`{"instanceId":%q,"regionId":%q}`, inst, region)
}

// directHint is a direct invocation for one instance asking for one ENI.
func directHint(inst, eni string) []byte {
	return fmt.Appendf(nil, `{"instanceId":%q,"regionId":%q,"networkInterfaceId":%q}`, inst, region, eni)
}

// stateChange is an EventBridge ECS state-change event; extra is spliced into its data.
func stateChange(inst, state, extra string) string {
	return fmt.Sprintf(`{"id":"hostile-%s-%s","source":"acs.ecs","specversion":"1.0","type":"ecs:Instance:StateChange",`+
		`"subject":"acs:ecs:%s:1234567890123456:instance/%s","aliyunregionid":%q,"aliyunpublishtime":"2024-05-01T10:00:01.179PRC",`+
		`"data":{"resourceId":%q,"resourceType":"ALIYUN::ECS::Instance","state":%q%s}}`, inst, state, region, inst, region, inst, state, extra)
}

// padded returns a state-change event grown to exactly size bytes by a data field.
func padded(inst, typ string, size int) []byte {
	base := strings.Replace(stateChange(inst, "Running", `,"pad":""`), "ecs:Instance:StateChange", typ, 1)
	if size < len(base) {
		return []byte(base)
	}
	return []byte(strings.Replace(base, `"pad":""`, `"pad":"`+strings.Repeat("x", size-len(base))+`"`, 1))
}

// envelopeAround is a dead-letter envelope, written by deadletter.Marshal, that names
// instance and holds ev.
func envelopeAround(t *testing.T, instance string, ev []byte) []byte {
	t.Helper()
	b, err := deadletter.Marshal(&deadletter.Envelope{Reason: "forged", Verdict: "retry", InstanceID: instance, Region: region,
		Error: &deadletter.Error{Code: "Throttling"}, ENIsTried: []string{}, Event: ev})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// hostileCases returns the inputs, in the order they are sent (some cases rely on what
// earlier ones left: an instance of the pool "db" still without its ENI, for instance).
// primary is the primary ENI of i-gen000000003.
func hostileCases(t *testing.T, primary string) []hostileCase {
	refused := []engine.Outcome{engine.OutcomeDeadLettered}
	notOurs := []engine.Outcome{engine.OutcomeSkipped}
	handled := []engine.Outcome{engine.OutcomeAttached, engine.OutcomeAlreadyAttached}
	anyButLost := []engine.Outcome{engine.OutcomeAttached, engine.OutcomeAlreadyAttached, engine.OutcomeSkipped, engine.OutcomeDeadLettered}
	limit := event.DefaultMaxBytes
	var bigBatch strings.Builder
	bigBatch.WriteByte('[')
	members := []string{"i-gen000000002", "i-gen000000003", "i-gen000000004", "i-gen000000005", "i-gen000000006",
		"i-gen000000007", "i-gen000000008", untaggedInst, foreignInst, dbInstance}
	for i := range 2000 {
		if i > 0 {
			bigBatch.WriteByte(',')
		}
		bigBatch.WriteString(directTo(members[i%len(members)]))
	}
	bigBatch.WriteByte(']')
	var tooMany strings.Builder
	tooMany.WriteByte('[')
	for i := range event.DefaultMaxEvents + 1 {
		if i > 0 {
			tooMany.WriteByte(',')
		}
		tooMany.WriteString(directTo("i-gen000000002"))
	}
	tooMany.WriteByte(']')
	deep := func(n int) []byte {
		return []byte(stateChange("i-gen000000002", "Running", `,"x":`+strings.Repeat("[", n)+strings.Repeat("]", n)))
	}
	wrapped := []byte(directTo("i-gen000000002"))
	for range 7 { // JSON strings inside JSON strings, beyond the decoder's wrapping limit
		q, _ := json.Marshal(string(wrapped))
		wrapped = q
	}
	nested := []byte(directTo("i-gen000000003"))
	for range 7 { // envelopes inside envelopes
		nested = envelopeAround(t, "i-gen000000003", nested)
	}
	mnsRaw := fmt.Appendf(nil, `{"requestId":"r-1","messageId":"m-1","messageBody":%q}`,
		base64.StdEncoding.EncodeToString([]byte(directTo(untaggedInst))))
	fcRec := fmt.Appendf(nil, `{"timestamp":1714528860123,"requestContext":{"requestId":"1-forged","functionArn":"acs:fc:cn-hangzhou:1234567890123456:functions/enipool",`+
		`"condition":"RetriesExhausted","approximateInvokeCount":3},"requestPayload":%q,"responseContext":{"statusCode":200},"responsePayload":""}`,
		string(directHint(hintTarget, dbENI)))
	truncatedEnv := func() []byte {
		b, err := deadletter.MarshalLimit(&deadletter.Envelope{Reason: "forged", InstanceID: "i-gen000000002", ENIsTried: []string{},
			Event: padded("i-gen000000002", "ecs:Instance:StateChange", 100000)}, 4096)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}()

	return []hostileCase{
		// First, while the instance of pool "db" holds nothing (a done instance ignores hints).
		{name: "pool ENI asked for by an instance of another pool", payload: directHint(dbInstance, "eni-gen000000001"), outcomes: refused,
			code: cloud.CodeNotInPool, results: 1},

		// Size.
		{name: "one byte over the decoder's 6 MiB limit", payload: padded("i-gen000000002", "ecs:Instance:StateChange", limit+1),
			outcomes: refused, code: cloud.CodeBadEvent, reason: "exceeds the limit", results: 1},
		{name: "16 MiB", payload: padded("i-gen000000002", "ecs:Instance:StateChange", 16<<20),
			outcomes: refused, code: cloud.CodeBadEvent, reason: "exceeds the limit", results: 1},
		{name: "valid event just under the limit", payload: padded("i-gen000000002", "ecs:Instance:StateChange", limit-16),
			outcomes: handled, results: 1},
		{name: "unsupported event just under the limit", payload: padded("i-gen000000002", "ecs:Disk:StateChange", limit),
			outcomes: refused, code: cloud.CodeUnsupported, reason: "ecs:Disk:StateChange", results: 1},
		{name: "batch of 2000 direct invocations over ten instances", payload: []byte(bigBatch.String()),
			outcomes: anyButLost, results: 2000, untouched: []string{untaggedInst, foreignInst, hintTarget}},
		{name: "batch one event over the limit", payload: []byte(tooMany.String()),
			outcomes: refused, code: cloud.CodeBadEvent, reason: "exceeds the limit", results: 1},
		{name: "batch of good, junk and foreign", payload: fmt.Appendf(nil, `[%s,"not an event",%s,{"instanceId":"I-GEN1"},%s,42]`,
			directTo("i-gen000000004"), directTo(untaggedInst), stateChange(foreignInst, "Running", "")),
			outcomes: anyButLost, results: 6, untouched: []string{untaggedInst, foreignInst}},

		// Structure.
		{name: "nesting one level beyond the limit", payload: deep(event.DefaultMaxDepth), outcomes: refused, code: cloud.CodeBadEvent,
			reason: "nesting exceeds", results: 1},
		{name: "nesting a million levels deep", payload: []byte(strings.Repeat("[", 1_000_000) + strings.Repeat("]", 1_000_000)),
			outcomes: refused, code: cloud.CodeBadEvent, reason: "nesting exceeds", results: 1},
		{name: "JSON strings wrapped seven times", payload: wrapped, outcomes: refused, code: cloud.CodeBadEvent, reason: "wrapped", results: 1},
		{name: "envelopes wrapped seven times", payload: nested, outcomes: refused, code: cloud.CodeBadEvent, results: 1},
		{name: "invalid UTF-8 in the instance id", payload: []byte("{\"instanceId\":\"i-gen\xff00000002\",\"regionId\":\"cn-hangzhou\"}"),
			outcomes: refused, code: cloud.CodeBadEvent, reason: "UTF-8", results: 1},
		{name: "invalid UTF-8 in an unknown field", payload: []byte(stateChange("i-gen000000002", "Running", ",\"note\":\"\xc3\x28\"")),
			outcomes: refused, code: cloud.CodeBadEvent, reason: "UTF-8", results: 1},
		{name: "raw NUL byte", payload: []byte("{\"instanceId\":\"i-gen000000002\x00\",\"regionId\":\"cn-hangzhou\"}"),
			outcomes: refused, code: cloud.CodeBadEvent, reason: "NUL", results: 1},
		{name: "escaped NUL in the instance id", payload: []byte(`{"instanceId":"i-gen000000002\u0000","regionId":"cn-hangzhou"}`),
			outcomes: refused, code: cloud.CodeBadEvent, reason: "instance id", results: 1},
		{name: "duplicated instanceId", payload: fmt.Appendf(nil, `{"instanceId":%q,"instanceId":%q}`, untaggedInst, "i-gen000000002"),
			outcomes: refused, code: cloud.CodeBadEvent, reason: "duplicate key", results: 1},
		{name: "duplicated key spelt with an escape", payload: fmt.Appendf(nil, `{"instanceId":%q,"instance\u0049d":%q}`, untaggedInst, "i-gen000000002"),
			outcomes: refused, code: cloud.CodeBadEvent, reason: "duplicate key", results: 1},
		{name: "duplicated resourceId inside data", payload: []byte(strings.Replace(stateChange(untaggedInst, "Running", ""),
			`"resourceType"`, `"resourceId":"i-gen000000002","resourceType"`, 1)),
			outcomes: refused, code: cloud.CodeBadEvent, reason: "duplicate key", results: 1},
		{name: "instance id of a megabyte", payload: fmt.Appendf(nil, `{"instanceId":"i-%s"}`, strings.Repeat("a", 1<<20)),
			outcomes: refused, code: cloud.CodeBadEvent, reason: "instance id", results: 1},
		{name: "empty payload", payload: []byte{}, outcomes: refused, code: cloud.CodeBadEvent, results: 1},
		{name: "null", payload: []byte("null"), outcomes: refused, results: 1},
		{name: "empty batch", payload: []byte("[]"), outcomes: refused, code: cloud.CodeBadEvent, results: 1},

		// Ids of other pools, VPCs and accounts.
		{name: "ENI of the same pool in another VPC", payload: directHint(hintTarget, otherVPCENI), outcomes: refused,
			code: cloud.CodeNotInPool, reason: otherVPCENI, results: 1, untouched: []string{hintTarget}},
		{name: "ENI of another pool", payload: directHint(hintTarget, dbENI), outcomes: refused,
			code: cloud.CodeNotInPool, reason: dbENI, results: 1, untouched: []string{hintTarget}},
		{name: "ENI of no pool", payload: directHint(hintTarget, plainENI), outcomes: refused,
			code: cloud.CodeNotInPool, reason: plainENI, results: 1, untouched: []string{hintTarget}},
		{name: "another instance's primary ENI", payload: directHint(hintTarget, primary), outcomes: refused,
			code: cloud.CodeNotInPool, results: 1, untouched: []string{hintTarget}},
		{name: "another account's ENI tagged with the pool", payload: directHint(hintTarget, foreignENI), outcomes: refused,
			code: cloud.CodeNotInPool, results: 1, untouched: []string{hintTarget}},
		{name: "ENI that does not exist", payload: directHint(hintTarget, "eni-doesnotexist1"), outcomes: refused,
			code: cloud.CodeNotInPool, results: 1, untouched: []string{hintTarget}},
		{name: "pool ENI asked for by an untagged instance", payload: directHint(untaggedInst, "eni-gen000000001"), outcomes: notOurs,
			code: cloud.CodeNotEligible, results: 1, untouched: []string{untaggedInst}},
		{name: "Running event for an untagged instance", payload: []byte(stateChange(untaggedInst, "Running", "")), outcomes: notOurs,
			code: cloud.CodeNotEligible, results: 1, untouched: []string{untaggedInst}},
		{name: "another account's instance", payload: []byte(directTo(foreignInst)), outcomes: notOurs,
			code: cloud.CodeNotFound, results: 1, untouched: []string{foreignInst}},
		{name: "Running event for a Stopped instance", payload: []byte(stateChange(stoppedInst, "Running", "")), outcomes: notOurs,
			code: cloud.CodeStaleEvent, results: 1, untouched: []string{stoppedInst}},
		{name: "instance in another region", payload: []byte(`{"instanceId":"i-gen000000002","regionId":"cn-shanghai"}`), outcomes: refused,
			code: cloud.CodeForeign, results: 1, untouched: []string{"i-gen000000002"}},
		{name: "ENI another account shares, tagged with the pool, ranked first", payload: []byte(directTo(sharedFirst())), outcomes: handled,
			results: 1},
		{name: "instance of the pool in another VPC takes that VPC's pool ENI", payload: []byte(directTo(otherVPCInst)), outcomes: handled, results: 1},
		{name: "list naming instances of every kind", payload: fmt.Appendf(nil, `{"instanceIds":[%q,%q,%q,%q,%q],"regionId":%q}`,
			"i-gen000000005", untaggedInst, foreignInst, dbInstance, "i-gen000000005", region),
			outcomes: anyButLost, results: 4, untouched: []string{untaggedInst, foreignInst}},
		{name: "MNS message whose base64 body names an untagged instance", payload: mnsRaw, outcomes: notOurs, code: cloud.CodeNotEligible,
			results: 1, untouched: []string{untaggedInst}},
		{name: "detach of another instance's primary ENI", payload: fmt.Appendf(nil, `{"action":"detach","networkInterfaceId":%q}`, primary),
			outcomes: refused, code: cloud.CodeNotInPool, results: 1},
		{name: "detach of an ENI of no pool", payload: fmt.Appendf(nil, `{"action":"detach","networkInterfaceId":%q}`, plainENI),
			outcomes: []engine.Outcome{engine.OutcomeSkipped, engine.OutcomeDeadLettered}, results: 1},
		{name: "action with a misspelt field", payload: []byte(`{"action":"reconcile","instanceID":"i-gen000000002"}`), outcomes: refused,
			results: 1},

		// Dead letters and destination records that lie.
		{name: "envelope naming an eligible instance around an event for an untagged one",
			payload:  envelopeAround(t, "i-gen000000006", []byte(stateChange(untaggedInst, "Running", ""))),
			outcomes: notOurs, code: cloud.CodeNotEligible, results: 1, untouched: []string{untaggedInst, "i-gen000000006"}},
		{name: "envelope naming an untagged instance around a request for an ENI of another VPC",
			payload:  envelopeAround(t, untaggedInst, directHint(hintTarget, otherVPCENI)),
			outcomes: refused, code: cloud.CodeNotInPool, results: 1, untouched: []string{untaggedInst, hintTarget}},
		{name: "envelope holding a truncated event", payload: truncatedEnv, outcomes: refused, code: cloud.CodeBadEvent,
			reason: "truncated", results: 1},
		{name: "FC destination record asking for an ENI of another pool", payload: fcRec, outcomes: refused,
			code: cloud.CodeNotInPool, results: 1, untouched: []string{hintTarget}},
	}
}

// TestHostileInputs throws each hostile input at the function, synchronously through the
// binary, and checks that it is refused cleanly and that the invariants hold after it:
// every input yields results and as many outcome lines, every dead letter carries the raw
// payload (or, when it cannot fit, its size and SHA-256) and a reason, nothing panics, and
// no ENI is ever attached outside its pool or to an instance not eligible for it. At the
// end, a redrive replays everything the inputs left in the dead-letter queue.
func TestHostileInputs(t *testing.T) {
	skipShort(t)
	w := hostileWorld(t)
	c, err := localcloud.Start(w, localcloud.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	logs := &testbed.LogBuffer{}
	fn, err := testbed.StartFunction(c, testbed.Function{Binary: functionBinary(), DeadLetterQueue: dlq, Logs: logs, Timeout: 30 * time.Second,
		MaxInstances: 1, Env: map[string]string{"ENIPOOL_ATTACH_TIME": "300ms", "ENIPOOL_DETACH_TIME": "150ms", "ENIPOOL_DLQ_RESERVE": "2s", "ENIPOOL_REDRIVE_MAX": "1000",
			"ENIPOOL_PLATFORM_RETRIES": "0"}, Async: fcrt.AsyncConfig{MaxRetryAttempts: fcrt.NoRetries}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { fn.Close() })
	baseline := baselineOf(c)
	primaries := map[string]string{}
	for _, e := range c.Store.ENIs() {
		if e.Type == world.ENIPrimary {
			primaries[e.InstanceID] = e.ID
		}
	}
	var texts []string

	for _, tc := range hostileCases(t, primaries["i-gen000000003"]) {
		ok := t.Run(tc.name, func(t *testing.T) {
			ck := &checker{t: t, known: tc.knownBug}
			defer ck.done()
			mark := len(c.Calls.Calls())
			logMark := len(logs.String())
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			res, err := fn.Invoke(ctx, tc.payload)
			if err != nil {
				t.Fatalf("invoke: %v", err)
			}
			texts = append(texts, string(res.Payload))
			if res.Error != nil {
				t.Fatalf("function error (%s): %s", res.Error.Cause, clip(res.Error.ErrorMessage, 500))
			}
			var resp handler.Response
			if err := json.Unmarshal(res.Payload, &resp); err != nil {
				t.Fatalf("result is not a response: %v: %s", err, clip(string(res.Payload), 300))
			}
			// The instance's output reaches the log through a pipe: wait for its lines.
			var newLogs string
			lines := 0
			for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
				newLogs, lines = logs.String()[logMark:], 0
				for _, l := range outcomeLines(newLogs) {
					if l.FCRequestID == res.RequestID {
						lines++
					}
				}
				if lines >= len(resp.Results) || time.Now().After(deadline) {
					break
				}
			}
			if strings.Contains(newLogs, "panic") || strings.Contains(newLogs, "goroutine ") {
				ck.Errorf("the function panicked:\n%s", clip(newLogs, 3000))
			}
			switch {
			case tc.results > 0 && len(resp.Results) != tc.results:
				ck.Errorf("%d results, want %d", len(resp.Results), tc.results)
			case len(resp.Results) == 0:
				ck.Errorf("no result: silence")
			}
			if lines != len(resp.Results) {
				ck.Errorf("%d outcome lines for %d results", lines, len(resp.Results))
			}
			dlqByID := map[string]testbed.Letter{}
			for _, m := range readDLQ(c) {
				dlqByID[m.ID] = m
			}
			for i, r := range resp.Results {
				if !slices.Contains(tc.outcomes, r.Outcome) {
					ck.Errorf("result %d (%s): outcome %s %s (%s), want one of %v", i, r.InstanceID, r.Outcome, r.Code, clip(r.Reason, 300), tc.outcomes)
					continue
				}
				success := r.Outcome == engine.OutcomeAttached || r.Outcome == engine.OutcomeAlreadyAttached
				if !success && tc.code != "" && r.Code != tc.code {
					ck.Errorf("result %d (%s): code %q, want %q (%s)", i, r.InstanceID, r.Code, tc.code, clip(r.Reason, 300))
				}
				if !success && (r.Reason == "" || !strings.Contains(r.Reason, tc.reason)) {
					ck.Errorf("result %d: reason %q lacks %q", i, clip(r.Reason, 300), tc.reason)
				}
				if r.Outcome != engine.OutcomeDeadLettered {
					continue
				}
				checkDeadLetter(ck.Errorf, dlqByID[r.DeadLetterID], r, res.RequestID, tc.payload)
			}
			for _, call := range c.Calls.Calls()[mark:] {
				if call.Service == "ecs" && call.Action == "AttachNetworkInterface" && call.HTTPStatus == 200 &&
					slices.Contains(tc.untouched, call.Params["InstanceId"]) {
					ck.Errorf("attached %s to %s", call.Params["NetworkInterfaceId"], call.Params["InstanceId"])
				}
			}
			settle(c, 5*time.Second)
			if v := placementViolations(c, baseline); len(v) > 0 {
				ck.Errorf("invariant 1 broken:\n  %s", firstN(v, 20))
			}
			for _, id := range []string{foreignENI, sharedENI, plainENI, dbENI, otherVPCENI} {
				if e, _ := c.Store.ENI(id); e.InstanceID != "" && !(id == dbENI && e.InstanceID == dbInstance) &&
					!(id == otherVPCENI && e.InstanceID == otherVPCInst) {
					ck.Errorf("%s is %s on %s", id, e.Status, e.InstanceID)
				}
			}
			for inst, eni := range primaries {
				if e, _ := c.Store.ENI(eni); e.InstanceID != inst || e.Status != world.ENIInUse {
					ck.Errorf("primary ENI %s of %s is %s on %q", eni, inst, e.Status, e.InstanceID)
				}
			}
		})
		if !ok {
			t.Logf("payload of %q: %s", tc.name, clip(string(tc.payload), 300))
		}
	}

	// Whatever the inputs left in the dead-letter queue is redriven, with two forged
	// envelopes among them: nothing may break.
	t.Run("redrive of every dead letter the inputs left", func(t *testing.T) {
		for _, b := range [][]byte{
			envelopeAround(t, "i-gen000000006", []byte(stateChange(untaggedInst, "Running", ""))),
			envelopeAround(t, untaggedInst, directHint(hintTarget, dbENI)),
		} {
			if err := c.MNS.Deliver(context.Background(), dlq, b); err != nil {
				t.Fatal(err)
			}
		}
		before := readDLQ(c)
		mark := len(c.Calls.Calls())
		res, err := fn.Invoke(context.Background(), []byte(`{"action":"redrive","max":1000}`))
		if err != nil {
			t.Fatal(err)
		}
		texts = append(texts, string(res.Payload))
		if res.Error != nil {
			t.Fatalf("function error: %s", res.Error.ErrorMessage)
		}
		var resp struct {
			Results []handler.Result      `json:"results"`
			Report  handler.RedriveReport `json:"report"`
		}
		if err := json.Unmarshal(res.Payload, &resp); err != nil {
			t.Fatal(err)
		}
		if resp.Report.Received != len(before) || resp.Report.Redriven+resp.Report.Kept != resp.Report.Received {
			t.Errorf("redrive report %+v for %d dead letters", resp.Report, len(before))
		}
		after := readDLQ(c)
		if len(after) != resp.Report.Kept {
			t.Errorf("%d dead letters after the redrive, %d kept: a redrive must not add letters", len(after), resp.Report.Kept)
		}
		settle(c, 5*time.Second)
		if v := placementViolations(c, baseline); len(v) > 0 {
			t.Errorf("invariant 1 broken:\n  %s", firstN(v, 20))
		}
		if got := c.Store.ENIs(world.OnInstance(hintTarget), world.Tagged(tagKey, pool)); len(got) != 0 {
			t.Errorf("%s got a pool ENI: %v", hintTarget, got)
		}
		for _, call := range c.Calls.Calls()[mark:] {
			if call.Action == "AttachNetworkInterface" && call.HTTPStatus == 200 &&
				slices.Contains([]string{untaggedInst, "i-gen000000006", hintTarget}, call.Params["InstanceId"]) {
				t.Errorf("the redrive attached %s to %s", call.Params["NetworkInterfaceId"], call.Params["InstanceId"])
			}
		}
		var redriven []string
		for _, r := range resp.Results {
			if r.Source != "direct" && r.Outcome != engine.OutcomeDeadLettered {
				redriven = append(redriven, fmt.Sprintf("%s %s %s %s", r.Outcome, r.InstanceID, r.NetworkInterfaceID, r.Code))
			}
		}
		t.Logf("redrive: %+v; handled: %v", resp.Report, redriven)
	})

	if v := historyViolations(c); len(v) > 0 {
		t.Errorf("call history:\n  %s", firstN(v, 20))
	}
	texts = append(texts, logs.String(), testbed.QueueText(c))
	if n := testbed.SecretsIn(c, texts...); n > 0 {
		t.Errorf("%d secret(s) the cloud issued appear in logs, results or messages", n)
	}
	if t.Failed() {
		t.Logf("function logs (tail):\n%s", clip(logs.String()[max(0, len(logs.String())-20000):], 20000))
	}
}

// checkDeadLetter checks that a dead-lettered result has its envelope in the queue: for this
// invocation and instance, with the result's reason and code, and the raw event: verbatim, or,
// when it was too large for a message, its size and SHA-256.
func checkDeadLetter(errorf func(string, ...any), m testbed.Letter, r handler.Result, requestID string, payload []byte) {
	env := m.Envelope
	switch {
	case r.DeadLetterID == "" || m.ID == "":
		errorf("dead-lettered %s, but message %q is not in the queue", r.InstanceID, r.DeadLetterID)
		return
	case env == nil:
		errorf("dead letter %s is not an envelope: %s", m.ID, clip(string(m.Body), 300))
		return
	}
	if env.FunctionRequestID != requestID || env.InstanceID != r.InstanceID || env.Reason != r.Reason {
		errorf("envelope is for %s from %s with reason %q; result: %s, %q", env.InstanceID, env.FunctionRequestID, clip(env.Reason, 200), r.InstanceID, clip(r.Reason, 200))
	}
	if env.Error == nil || env.Error.Code != r.Code {
		errorf("envelope error %+v, result code %q", env.Error, r.Code)
	}
	if env.EventTruncated {
		if len(m.Body) > deadletter.MaxMessageBytes || !bytes.HasPrefix(payload, env.Event) {
			errorf("truncated envelope of %d bytes does not hold a prefix of the payload", len(m.Body))
		}
		// A batch element is dead-lettered alone; only a whole payload is checked by size.
		if env.EventSize == len(payload) {
			sum := sha256.Sum256(payload)
			if env.EventSHA256 != hex.EncodeToString(sum[:]) {
				errorf("truncated envelope's eventSha256 is not the payload's")
			}
		}
		return
	}
	for _, raw := range rawForms(payload) {
		if bytes.Equal(env.Event, raw) || len(env.Event) > 0 && bytes.Contains(raw, env.Event) {
			return
		}
	}
	errorf("envelope event %q is not (part of) the payload", clip(string(env.Event), 200))
}

// rawForms returns the texts a dead letter of payload may carry as its event: the payload
// itself (or one of its batch elements), the text a JSON string payload holds, and the
// original event inside an envelope or an FC destination record: one layer unwrapped, as
// a redrive of the dead letter must meet the same event again.
func rawForms(payload []byte) [][]byte {
	out := [][]byte{payload}
	var s string
	if json.Unmarshal(payload, &s) == nil {
		out = append(out, []byte(s))
	}
	if env, err := deadletter.Parse(payload); err == nil {
		out = append(out, env.Event)
	}
	if rec, err := deadletter.ParseFCDestinationRecord(payload); err == nil {
		out = append(out, rec.RequestPayload)
	}
	return out
}
