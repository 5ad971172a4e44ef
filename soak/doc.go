// Package soak holds enipool's long-running and adversarial tests: the built function binary
// under the local FC runtime, invoked the way the platform invokes it, against the local
// cloud with its fault plan switched on. It has no code of its own; everything is in the
// tests.
//
// TestSoak is the chaos soak, run twice on one seed: with N=1 and with N=2 pool ENIs per
// instance. The cloud is the production-faithful one: attach and detach times drawn from
// the long-tailed spreads of localcloud/worlds/demo.yaml (median 2 s, p99 8 s), with no
// ENIPOOL_ATTACH_TIME or ENIPOOL_DETACH_TIME to tell the function; describes that lag writes;
// answers lost after the action was applied; latency on requests and responses; instances
// launched through Pending and Starting, stopped through Stopping and started again (a
// quarter of them of a type with room for a surplus at N=2, the others full at N=2); FC's
// go1 instance model (one request per instance, a fresh process for each cold start, idle
// instances reclaimed); and the function's policy rendered for the soak's world (package
// deploy: its region, account and pools) with its tag conditions removed, so that
// RAM would let the function attach to untagged instances and only the function's own
// checks protect them. On top come the soak's own faults: throttling, 5xx, connection
// resets, attaches rolled back, a ten-second MNS outage, and three function timeouts (3 s, 8 s
// and 20 s). A seeded stream of ECS state-change events (each first delivered once its change
// has happened, then duplicated, concurrently or later, and reordered; Stopping events; a
// few direct requests; a little junk) goes to the function asynchronously, as EventBridge
// sends it.
//
// The events are judged alone first, when they are done and before any upkeep:
//   - every invocation ends once: one terminal outcome line, the dead letter it names
//     carrying the event verbatim, or FC's onFailure record; nothing is lost;
//   - every end is the right one for the world while its last attempt ran (the instance's
//     statuses from the attempt's start, less the staleness bound, to its end): a Running
//     event for a tagged Running instance ends attached or already-attached, or
//     dead-lettered with a reason that can be true (not the ENI limit when the instance held
//     its N of the pool's ENIs: that event's work was done); a Stopped event for a Stopped instance
//     releases or finds nothing; an untagged instance is skipped; an event its instance's
//     status contradicts is skipped as stale; junk is dead-lettered;
//   - every eligible Running instance holds exactly N InUse ENIs of its pool, every other
//     instance none, or a dead letter names the instance (the only honest alternative);
//   - no ENI outside its pool or on an ineligible instance.
//
// Then the upkeep runs as production does (redrive, reconcile, until quiet): redrive may fix
// what dead letters named, but a reconcile that attaches or detaches for an instance no dead
// letter named fails the soak. The world is judged again at rest, with the whole call history
// (never one ENI attached twice at once) and every secret the cloud issued.
//
// Every interval in which an eligible instance held more than N pool ENIs (Attaching or
// InUse) is read off the store's log of status changes at their true times; each must end
// within the true duration of the attach that made it plus one poll of the function (its 2 s
// back-off cap) and the staleness bound, and the longest is reported.
//
// Two things the faults make legitimate are counted, not failed: a line logged by an attempt
// FC then killed at its timeout, and a dead letter (the function's, or FC's onFailure record)
// sent twice because MNS enqueued it and the answer was lost (at least once, not lost). A failing run keeps the function's output
// in a temporary file and says where.
//
// Each run prints a report and one JSON line: events, instances, exactlyNBeforeUpkeep,
// deadLetteredInstances, outOfPlaceBeforeUpkeep, repairedByUpkeep, lost, wrongOutcome,
// doubleAttach, maxOverNMillis, staleReads, faultsAfterAction, fcInstances, seed and more.
//
// The seed comes from ENIPOOL_SOAK_SEED: a number, or random for a fresh one from the clock
// (logged with the command that replays it); unset, it is 1 on a developer's machine and a
// fresh one in CI (CI set), so every CI run tries a new seed. A failing run prints the seed and
// that command. The schedule, the fault decisions (per call index) and the
// attach durations (per attach index) repeat with the seed; the interleaving of concurrent
// invocations does not. -short (make unit) skips the soak; with ENIPOOL_SOAK_SHORT=1 as well
// it runs shrunken (40 instances, 80 events per N, about 40 s each), for development.
//
// TestHostileInputs sends payloads built to hurt (oversized, deeply nested, invalid UTF-8,
// NUL bytes, huge batches, duplicated keys, ids of other pools, VPCs or accounts, envelopes
// and destination records that lie) and checks that each is refused cleanly: a result and a
// log line for every input, a dead letter carrying the raw payload and a reason where one is
// due, no panic, and no ENI attached outside its pool; then it redrives everything they left.
//
// TestStopWhileAttachUnconfirmed replays deterministically a race the soak meets now and then.
//
// A case that meets a bug already reported carries a note (knownBug): its failures are
// logged as KNOWN BUG instead of failing, and it fails once they are gone, so that the note
// goes with the fix.
//
//	go test -race -count=1 -v -run '^TestSoak$' ./soak/
//	ENIPOOL_SOAK_SEED=7 go test -race -count=1 -v -run '^TestSoak$' ./soak/
//	ENIPOOL_SOAK_SHORT=1 go test -race -count=1 -short -v -run '^TestSoak$' ./soak/
package soak
