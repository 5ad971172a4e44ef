// Package trigger delivers events to a function the way the triggers of its s.yaml do, so that
// tests and the demo (`make run`, internal/cmd/demo) exercise the deployed configuration
// rather than hand-written payloads. LoadProject renders s.yaml (${vars.x}, ${env('X', 'default')},
// ${config('AccountID')}, ${str('vars.x')}, as `s preview` does); Start runs one function's
// triggers against an fcrt.Runtime and the local MNS server; Publish puts events on the
// default event bus; Deliveries, Stats and Errors say what happened. A Clock (FakeClock for
// virtual time, ScaledClock for faster real time) drives every schedule, window, delay and
// retry wait. Watch turns the world's instance state changes and new lifecycle actions into
// events on the default bus, as ECS and Auto Scaling do.
//
// What each trigger does, and where it comes from. "Confirmed" means a public source says
// so; "assumed" means no source was found and this package chose.
//
// # Timer (triggerType timer)
//
// Confirmed: the function receives {"triggerTime","triggerName","payload"} with the configured
// payload as a string (fc-runtime-go-sdk v0.3.1 events/timer.go and events/README_TIMER.md,
// whose sample is testdata/timer.json; TimerTriggerConfig in the FC 2023-03-30 API reference:
// "the trigger message is used as the value of the payload in the event"). cronExpression is
// "@every <interval>" or six fields (seconds to day-of-week) in UTC (same reference; FC's
// "Time triggers" page). triggerTime has the sample's form: UTC, whole seconds.
//
// Assumed: that FC invokes timer triggers asynchronously, so that asyncInvokeConfig's retries
// and event age apply (the FC documents found describe timers as suited to asynchronous tasks
// but do not say which invocation type they use); that "@every" counts from when the trigger
// starts; and that triggerTime is the scheduled time, not the time of the push. Destinations:
// the only statement found, in an FC 2.0-era page, is that asynchronous-invocation
// destinations do not support time triggers; nothing found says FC 3.0 changed it. So by
// default a timer invocation that fails after its retries is dropped without an onFailure
// record (fcrt.AsyncOptions.NoDestinations); Options.TimerDestinations turns destinations on
// to test the other reading.
//
// # EventBridge rules on the default bus (eventbridge, eventSourceType Default)
//
// Confirmed: events are CloudEvents 1.0 with Alibaba's extension attributes, and an event on
// the default bus looks like EventBridge's "Event overview" sample (testdata/
// eventbridge-event.json), aliyunpublishtime in its "...179PRC" form included; type
// ecs:Instance:StateChange (EventBridge "ECS events") and ess:LifecycleHook:ScaleOut /
// ScaleIn ("Auto Scaling events"); pattern matching (exact values, arrays as any-of, prefix,
// suffix, contains, anything-but, numeric, cidr, exists; AND across fields) per EventBridge's
// "Event patterns" page; asyncInvocationType true invokes asynchronously, so FC's retries and
// onFailure destination apply (fc3 trigger docs). Event-driven mode pushes one event per
// invocation (FC API RunOptions).
//
// Assumed: the data of ecs:Instance:StateChange is the ECS notification's content
// ({resourceId, resourceType, state}; compared with testdata/ecs-notification.json) and source
// is acs.ecs, which Alibaba's samples use but no full published event shows. No published
// sample of the data of the Auto Scaling lifecycle events exists: ESSLifecycle puts the keys
// of the lifecycle notification ESS sends to MNS (testdata/ess-lifecycle-notification.json),
// and the function must accept other plausible layouts. Delivery is at least once with the
// knobs of BusOptions (a seeded delay per delivery, hence reordering, and duplicates); the
// platform's real figures are not documented. A rule with asyncInvocationType false is pushed
// synchronously with BACKOFF_RETRY (3 retries, 10-20 s apart), EventBridge's documented
// default strategy.
//
// # MNS queue trigger (eventbridge, eventSourceType MNS: an event stream)
//
// Confirmed: each message becomes a CloudEvent of type mns:Queue:SendMessage with data
// {requestId, messageId, messageBody}, source and bus name MNS-<function>-<trigger>, subject
// acs:mns:<region>:<account>:queues/<queue> (fc-runtime-go-sdk events/README_MNS_Queue.md,
// testdata/mns-queue.json; fc3 docs for the source name); event streaming pushes JSON arrays,
// cut at CountBasedWindow (1-10000) events or TimeBasedWindow (0-15 s), whichever first (FC
// "Advanced features of triggers", FC API RunOptions); the push is synchronous, so the
// stream's own retryStrategy applies: BACKOFF_RETRY 3 retries at random 10-20 s intervals,
// EXPONENTIAL_DECAY_RETRY 176 retries doubling up to 512 s, MaximumRetryAttempts and
// MaximumEventAgeInSeconds as configured (EventBridge event-target retry docs, doc 185887);
// errorsTolerance ALL moves a failed event to the deadLetterQueue and goes on, NONE stops the
// stream (fc3 docs); eventSchema RawData pushes only each event's data.
//
// Assumed: IsBase64Decode (default true) decodes a body that is valid base64 of UTF-8 text and
// leaves any other body as it is (FC's reference only says the body is decoded; Alibaba's Go
// sample received a plain console message unchanged); a batch fails or succeeds as a whole
// and is retried whole; a message is deleted from the queue once its batch succeeded or went
// to the dead-letter queue, so a stream stopped by NONE leaves its messages in the queue, and
// a retry longer than the queue's visibility timeout may see the message again (at least
// once); the dead-letter queue receives each failed event's CloudEvent as one message;
// maximumTasks (default 1) batches are pushed at once; the request id and publish address
// are made up. The 32 MB synchronous payload limit is not enforced.
package trigger
