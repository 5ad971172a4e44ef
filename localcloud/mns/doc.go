// Package mns emulates Alibaba Cloud MNS (Simple Message Queue) queues, API version
// 2015-06-06, for one account in one region. The real, unmodified aliyun-mns-go-sdk talks
// to it over loopback; so does any client that follows the MNS HTTP API.
//
// # Operations
//
// Queue API: SendMessage and BatchSendMessage (POST /queues/{q}/messages, <Message> or
// <Messages>, up to 16), ReceiveMessage and BatchReceiveMessage (GET, waitseconds 0-30,
// numOfMessages 1-16, long polling that ends early on a send and honours the request
// context), PeekMessage and BatchPeekMessage (peekonly=true), DeleteMessage and
// BatchDeleteMessage, ChangeMessageVisibility, GetQueueAttributes, CreateQueue,
// SetQueueAttributes (metaoverride=true), DeleteQueue and ListQueue.
//
// Server also has a Go API for tests and for the other emulators: CreateQueue,
// SetQueueAttributes, Messages (peek at every message, in flight or not), Receive, Delete,
// Drain, and Deliver / Queue (the FC runtime's onFailure destination).
//
// # Aiming the SDK at the emulator
//
// The SDK insists on an endpoint of the form {account}.mns.{region}.aliyuncs.com and panics
// on http://127.0.0.1:port. Keep the realistic endpoint (Server.Endpoint) and install a
// dialling transport (internal/mnsdial.Transport) with client.SetTransport before the first
// request: the SDK then connects to addr but sends exactly what it would send to MNS (Host
// header, path, signature). See the example.
//
// # What a request must pass
//
// In order: x-mns-version (MissingVersionHeader, InvalidVersionHeader), Authorization
// "MNS id:signature" (MissingAuthorizationHeader, InvalidAuthorizationHeader), Date or
// x-mns-date in RFC 1123 GMT (MissingDateHeader, InvalidDateHeader), the key and its STS
// token from the security-token header (InvalidAccessKeyId; AccessDenied for a missing,
// wrong, expired or unexpected token), the HMAC-SHA1 signature (SignatureDoesNotMatch), the
// 15-minute window (TimeExpired, 408), Content-MD5 when present, which the SDKs compute as
// base64 of the lower-case hex MD5 of the body (InvalidDegist), and the Host header: an MNS
// endpoint of this region (InvalidRequestURL) naming this server's account, which must be
// the key's (AccessDenied). Then the Authorizer, if any, is asked for action
// "mns:{Action}" on the RAM resource acs:mns:{region}:{account}:/queues/{q}/messages
// (message actions), .../queues/{q} (queue actions) or .../queues (ListQueue); a refusal
// answers AccessDenied. {Action} is the API's name (BatchReceiveMessage); the local cloud's
// authorizer (package ram's table) decides which RAM action that is. Validation follows: QueueNotExist (404), MalformedXML,
// InvalidArgument (Priority outside 1-16, which the SDK's default 0 is; DelaySeconds
// outside 0-604800; a body of 0 or more than the queue's MaximumMessageSize, 64 KiB by
// default; more than 16 entries or 64 KiB in a batch), MessageNotExist (404, an empty
// queue or an expired, deleted or replaced receipt handle), ReceiptHandleError (an
// unreadable handle), MissingReceiptHandle, MissingVisibilityTimeout, InvalidQueueName,
// QueueNameLengthError, QueueAlreadyExist (409).
//
// Errors are <Error xmlns="http://mns.aliyuncs.com/doc/v1/"> documents with Code, Message,
// RequestId and HostId, with headers x-mns-request-id and x-mns-version, and
// Content-Type text/xml;charset=utf-8, as are all answers.
//
// Where the codes come from: the MNS error-code table (help document 27501, "Error codes")
// gives every code above with its HTTP status except the following. InvalidDegist is
// spelled that way in every version of that table and in the official Go, Java and Python
// SDKs; MNS does not send "InvalidDigest". MissingVersionHeader and InvalidVersionHeader
// come from the Go SDK's error list, not from the table. TooManyRequests (429) is the
// throttling answer of the "Throttling policy" page; QpsLimitExceeded (400) is the older
// table's. ServiceUnavailable (503) is not an MNS code: it is the generic Alibaba Cloud
// answer for a temporary failure, used for outages. MNS documents no code for STS token
// problems; AccessDenied is this emulator's choice. The Priority message text follows
// aliyun/aliyun-mns-go-sdk issue #12. BatchDeleteMessage reports partial failure as 404
// with an <Errors> document listing each failed handle (ErrorCode, ErrorMessage,
// ReceiptHandle); the entry format is the one the official SDKs parse, the 404 status is
// not documented.
//
// # Queue semantics
//
// Messages are received by priority (1 first), then by the time they became visible, then
// in send order. A message is Delayed until its delay ends, Active while receivable, and
// Inactive for the visibility timeout after each receive, after which it is Active again
// with its DequeueCount kept. Each receive (and each ChangeMessageVisibility, and a
// delayed send) issues a new receipt handle, valid until the message next becomes Active;
// older handles answer MessageNotExist. Messages older than the queue's retention period
// disappear. Message ids are unique per server. Times come from Options.Clock, so tests
// move a clock rather than sleep; long polls wait in real time. Bodies are stored as sent
// (MNS does not decode base64) and MessageBodyMD5 is the upper-case hex MD5 of the body.
//
// GetQueueAttributes reports exact ActiveMessages, InactiveMessages and DelayMessages.
// MNS documents these as approximate and announces that they will read 0; tests may rely
// on them here, production code should not.
//
// # Faults
//
// Every request, and every Deliver, first asks Options.Faults for Decide("mns", action).
// A delay waits (ending early, unanswered, if the client goes away). An outage answers 503
// ServiceUnavailable rather than dropping the connection: a dropped connection reaches
// fasthttp as io.EOF, and fasthttp then silently retries even a POST up to five times, so
// one SDK call would become several recorded calls; a 503 fails each attempt exactly once,
// with a code clients can classify as retryable, and so sends fail for as long as the
// window lasts. An error rule answers its code, with its status and message or else the
// code's own. A reset rule hijacks the connection and closes it with a TCP RST before the
// request is processed (so no message is stored); note the fasthttp retries above.
//
// Response-side faults apply once the request has reached its handler: the answer is held
// back, then delayed by the plan's responseLatency, and for a successful call the plan's
// afterAction rules may lose it although the action was served (SendMessage: the message
// is stored). Kind reset drops the connection (fasthttp then resends the POST, so the
// message is stored twice: at-least-once, as MNS documents for its producers), kind error
// answers ServiceUnavailable 503 or the rule's code, kind timeout holds the answer past the
// client's timeout (or the rule's hold) and then drops the connection. Deliver applies the
// same rules after storing the message. Each is counted in the injector's Stats.
//
// # Record
//
// Each answered request adds one record.Call: service "mns", the action, the principal's
// name, the queue and the AccessKeyId, outcome parameters (message ids, receipt handles,
// priority, delay, counts), body size and MD5 but never the body, and never a secret. The
// HTTP status, code, injected fault and latency complete it. A client that went away
// before an answer is recorded with status 499.
package mns
