// Package fcrt emulates the Function Compute 3.0 runtime for a go1 function: it runs the real
// function binary as FC does and speaks the runtime API that github.com/aliyun/fc-runtime-go-sdk
// v0.3.1 talks to, so that a test or benchmark can invoke the built function the way the
// platform would, synchronously (like `s invoke`) or asynchronously (with FC's retries and
// result-callback destinations).
//
// It is used like net/http/httptest: Start a Runtime for a Function, Invoke or InvokeAsync it,
// read what happened (Invocations, AsyncTasks, Instances), Close it.
//
// # Faithful to FC
//
//   - Runtime API: GET /2020-11-11/runtime/invocation/next blocks until there is an invocation
//     and answers with the payload as body and the headers the SDK reads (x-fc-request-id,
//     x-fc-function-deadline in epoch milliseconds, the STS triple, function name, handler,
//     memory, timeout in seconds, region, account id, qualifier, x-fc-retry-count);
//     POST .../{requestId}/response and .../{requestId}/error answer 200. The error body
//     ({"errorMessage","errorType","stackTrace"}) is what a synchronous caller gets back, as with
//     FC, which flags it with X-Fc-Error-Type: UnhandledInvocationError.
//   - Instances are OS processes of the binary, started with FC_RUNTIME_API=127.0.0.1:<port> (one
//     listener per instance, so the listener says which instance asks), FC's variables
//     (FC_FUNCTION_NAME, FC_FUNCTION_HANDLER, FC_FUNCTION_MEMORY_SIZE, FC_REGION, FC_ACCOUNT_ID,
//     FC_INSTANCE_ID), the role's STS triple as ALIBABA_CLOUD_ACCESS_KEY_ID / _SECRET /
//     _SECURITY_TOKEN, the function's own environment variables and, with TrustedCAs,
//     SSL_CERT_FILE (the runtime image's trust store). The test runner's own environment is
//     not inherited, as no FC instance inherits the deployer's.
//   - Instance model of FC 3.0's standard runtimes (go1): one invocation at a time per
//     instance (InstanceConcurrency, default 1: "standard runtimes no longer support the
//     instance concurrency feature", FC's "Comparison between Function Compute 3.0 and 2.0").
//     A concurrent invocation gets another instance, a fresh process that shares no memory
//     with the others and cold-starts, up to MaxInstances; beyond that invocations wait in a
//     FIFO queue (assumed: FC answers a throttling error past its instance quota instead).
//     Idle instances are reused, warm ones first, and reclaimed after IdleTimeout (FC reclaims
//     idle instances; the idle time is not documented, so it is a setting, off by default).
//     Stats counts instances started, cold starts and reclaims. The SDK asks for its next
//     invocation while the previous one still runs; an instance is handed one only while it
//     has capacity.
//   - An invocation that runs past its timeout fails with FC's timeout error and its instance is
//     killed; a process that exits fails its in-flight invocations and is replaced on the next
//     need. A handler panic is recovered by the SDK and reported through /error with a stack
//     trace; the process lives on, so FC (and this package) keep using the instance.
//   - Credentials: every invocation gets a fresh STS triple from Function.Credentials, in the
//     headers the SDK turns into fccontext.Credentials.
//   - Asynchronous invocations retry function errors up to MaxRetryAttempts (0..8, default 3),
//     each retry carrying x-fc-retry-count = retries so far and the same request id; an event
//     older than MaxEventAge (default 18000 s, the fc3 default) is not run again. Then the
//     onSuccess or onFailure destination gets FC's destination record (see DestinationRecord for
//     the format and its sources). A delivery that fails is retried until it succeeds or the
//     Runtime closes, and every try is recorded: nothing is dropped silently.
//
// # Simplified
//
//   - FC's retry interval for function errors is not documented; FC documents binary
//     exponential backoff (0.5 s, then 1 s, 2 s, 4 s, ...) for throttled and system errors, and
//     FCBackoff applies that schedule to every retry. Tests override it with AsyncConfig.Backoff.
//   - The timeout may be shorter than a second (FC counts whole seconds) so that tests stay
//     fast; the x-fc-function-timeout header is rounded up to whole seconds.
//   - Memory is reported (peak RSS, VmHWM from /proc/<pid>/status, sampled at every runtime API
//     call and before a kill) but not enforced. No initializer or pre-stop hooks, no HTTP functions, no payload
//     size limits, no account-level throttling (429) and no system errors are emulated.
//   - The texts of the timeout and crash error messages follow FC's wording as far as it is
//     known; match FunctionError.Cause, not the text.
//
// Instances write their stdout and stderr, line by line and each line prefixed with
// "[<function> <instance id>] ", to Function.Logs; a last line without a newline is written when
// the process exits. The runtime itself never writes a credential anywhere.
package fcrt
