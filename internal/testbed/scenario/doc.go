// Package scenario runs the function against a world that changes on a timeline, and says
// what came of it. The function hears of the changes only the way it would in production:
// through the triggers of the project's s.yaml (package trigger): ECS instance state changes
// and Auto Scaling lifecycle actions reach it from the default event bus (Watch), messages
// sent to the work queue through its event stream, and the timer fires on its cron. Nothing
// is invoked by hand, and nothing tells the function the world's attach time.
//
// Load (or Parse) reads and validates a scenario file, reporting every problem with the path
// of its field (`timeline[2].launch.count: must be positive, got 0`); Run builds the function,
// starts the cloud, the function and its triggers, plays the timeline, waits for the end and
// returns a Report; `make scenario` (the demo command's `run -scenario FILE`) prints the
// story and, as its last line, the report as one JSON object.
//
// # Scenario file fields (YAML)
//
//	name:          default: the file name without its extension
//	description:   one line, printed first
//	project:       the s.yaml to run the function with, relative to the scenario file (the
//	               runner's -triggers flag overrides it)
//	world:         a world file path (relative to the scenario file), or a world inline; the
//	               schema is package world's, its relative policy files resolve against the
//	               world file (or, inline, the scenario file)
//	tagKey:        the pool tag key [enipool]; must be the function's ENIPOOL_TAG_KEY
//	pools[]:       Available pool ENIs added to the world (ids eni-scn<i>pool<nnnnnn>)
//	  pool, count:   tag value and how many
//	  vswitches:     round-robin [every vSwitch of the world not deleted]
//	  securityGroups: [the first VPC security group of each vSwitch's VPC]
//	fc:
//	  maxInstances:  concurrent FC instances of the function [100, FC's default quota]
//	  idleTimeout:   reclaim an instance idle that long; the next need cold-starts [0: never]
//	bus:           the default event bus's at-least-once knobs: minDelay, maxDelay, duplicates
//	seed:          seeds the bus's delays and duplicates (the world's faults.seed seeds the cloud)
//	timeline[]:    steps, each exactly one of:
//	  launch:        a scaling activity: instances of a pool, each Pending, Starting, Running
//	    count, pool:   how many, and the value of their pool tag
//	    over:          spread the launches evenly over this duration [0: all at once]
//	    as:            a label later steps pick these instances by (from)
//	    type:          [the world's first instance type that takes ENIs while Running]
//	    vswitches:     round-robin [the vSwitches of the pool's ENIs]
//	    securityGroups: [those of the pool's first ENI]
//	    hook:          the SCALE_OUT lifecycle hook whose action covers the activity's instances,
//	                   started once none of them is Pending or Starting [the world's only
//	                   scale-out hook; none when it has none]; "none" for no action
//	    pending, starting: how long each instance stays Pending and Starting [2s, timing.start]
//	  stop:          {ids} or {count, from|pool}: the first count instances (id order) of the
//	                 label, the pool or the world that are Pending, Starting or Running; each is
//	                 stopped once Running (ECS StopInstance: Stopping for timing.stop)
//	    within:        how long to wait for that [60s]; longer is an error
//	  start:         the same, of instances Stopped or Stopping; each started once Stopped
//	  release:       the same, of live instances, released at once; with whileAttaching: true,
//	                 each as soon as one of its pool ENIs is Attaching (within bounds the wait)
//	  send:          messages a producer puts on a queue
//	    queue:         a queue of the world, or "work": s.yaml's work-queue trigger's queue
//	    count, body:   how many, and the body; {{instance}} (round-robin over from or pool or
//	                   the world's live instances), {{region}}, {{n}} (1, 2, ...) are replaced
//	    over:          spread evenly [0]
//	  wait:          a duration
//	end:           quiet (nothing happened for so long: no world change, API call, trigger
//	               delivery, invocation, and nothing in flight), deadline (after the first
//	               step) or both [deadline 30m]
//
// Each step starts when the one before it has ended; a launch ends when its last instance is
// launched (its lifecycle action starts later, on its own).
//
// # The report
//
// Measured on the world at the end: instances (alive), eligible (Running, tagged with a pool,
// of a type that takes ENIs while Running), exactlyN (eligible instances holding exactly N
// ENIs of their own pool, all InUse; N is the function's ENIPOOL_ENIS_PER_INSTANCE),
// outsidePool (pool ENIs bound to instances that must not hold them), doubleAttach (ENIs that
// began attaching to an instance while bound to another, over the whole history of status
// changes, plus instances over N at the end), deadLetters (messages in the dead-letter
// queue), lifecycleCompleted (of the actions the launches started, those completed by a
// caller rather than by the hook's timeout); and counted during the run: invocations,
// fcInstances, coldStarts (package fcrt), staleReads and faultsAfterAction (package fault),
// and more (see Report).
//
// # Assumptions
//
// How long an instance stays Pending (2 s by default) and that ESS starts a scale-out's
// lifecycle action once its instances run (its documents say instances wait in
// Pending:Wait, which they describe as after creation) are this package's choices. One launch
// step is one scaling activity and one lifecycle action, however many instances it has.
package scenario
