package mns

import (
	"crypto/md5"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Limits of MNS queues and messages (MNS CreateQueue, SendMessage, BatchSendMessage,
// ReceiveMessage and ChangeMessageVisibility references; "Limits" page).
const (
	maxDelaySeconds      = 604800 // 7 days
	minMaxMessageSize    = 1024
	maxMessageSize       = 65536 // 64 KiB, per message and per batch
	minRetentionSeconds  = 60
	maxRetentionSeconds  = 604800
	minVisibilitySeconds = 1
	maxVisibilitySeconds = 43200
	maxPollingWait       = 30
	minPriority          = 1
	maxPriority          = 16
	defaultPriority      = 8
	maxBatch             = 16
	maxQueueNameLength   = 256
)

// State is the state of a message in its queue, as MNS names it.
type State string

// Message states. A message is Delayed until its delay ends, Active while it can be
// received, and Inactive (in flight) from a receive until its visibility timeout ends.
const (
	StateActive   State = "Active"
	StateInactive State = "Inactive"
	StateDelayed  State = "Delayed"
)

// QueueConfig is a queue's attributes. Durations are whole seconds, as MNS counts them;
// zero values take the MNS defaults noted on each field.
type QueueConfig struct {
	// Delay applies to messages sent without DelaySeconds. 0 to 7 days; default 0.
	Delay time.Duration
	// MaxMessageSize bounds a message body in bytes. 1024 to 65536; default 65536.
	MaxMessageSize int
	// Retention is how long a message lives, received or not. 60 s to 7 days; default 4 days.
	Retention time.Duration
	// VisibilityTimeout is how long a received message stays Inactive. 1 s to 12 h;
	// default 30 s.
	VisibilityTimeout time.Duration
	// PollingWait is how long a receive without waitseconds waits. 0 to 30 s; default 0.
	PollingWait time.Duration
}

// queueCfg is a validated QueueConfig in MNS units (seconds, bytes).
type queueCfg struct {
	delay, maxSize, retention, visibility, pollingWait int64
	logging                                            bool
}

func defaultCfg() queueCfg {
	return queueCfg{delay: 0, maxSize: maxMessageSize, retention: 345600, visibility: 30, pollingWait: 0}
}

func (c QueueConfig) cfg() (queueCfg, *Error) {
	out := defaultCfg()
	secs := func(name string, d time.Duration, low, high int64, dst *int64, zeroIsDefault bool) *Error {
		if d == 0 && zeroIsDefault {
			return nil
		}
		if d%time.Second != 0 {
			return errorf(CodeInvalidArgument, "The value of %s must be a whole number of seconds.", name)
		}
		n := int64(d / time.Second)
		if n < low || n > high {
			return rangeError(name, low, high, "seconds")
		}
		*dst = n
		return nil
	}
	if err := secs("DelaySeconds", c.Delay, 0, maxDelaySeconds, &out.delay, true); err != nil {
		return out, err
	}
	if c.MaxMessageSize != 0 {
		if c.MaxMessageSize < minMaxMessageSize || c.MaxMessageSize > maxMessageSize {
			return out, rangeError("MaximumMessageSize", minMaxMessageSize, maxMessageSize, "bytes")
		}
		out.maxSize = int64(c.MaxMessageSize)
	}
	if err := secs("MessageRetentionPeriod", c.Retention, minRetentionSeconds, maxRetentionSeconds, &out.retention, true); err != nil {
		return out, err
	}
	if err := secs("VisibilityTimeout", c.VisibilityTimeout, minVisibilitySeconds, maxVisibilitySeconds, &out.visibility, true); err != nil {
		return out, err
	}
	if err := secs("PollingWaitSeconds", c.PollingWait, 0, maxPollingWait, &out.pollingWait, true); err != nil {
		return out, err
	}
	return out, nil
}

// applyXML overrides c with the attributes present in x, checking their ranges.
func (c queueCfg) applyXML(x queueConfigXML) (queueCfg, *Error) {
	set := func(name string, v *string, low, high int64, dst *int64) *Error {
		if v == nil {
			return nil
		}
		n, err := strconv.ParseInt(strings.TrimSpace(*v), 10, 64)
		if err != nil || n < low || n > high {
			return rangeError(name, low, high, "")
		}
		*dst = n
		return nil
	}
	for _, f := range []struct {
		name      string
		v         *string
		low, high int64
		dst       *int64
	}{
		{"DelaySeconds", x.DelaySeconds, 0, maxDelaySeconds, &c.delay},
		{"MaximumMessageSize", x.MaximumMessageSize, minMaxMessageSize, maxMessageSize, &c.maxSize},
		{"MessageRetentionPeriod", x.MessageRetentionPeriod, minRetentionSeconds, maxRetentionSeconds, &c.retention},
		{"VisibilityTimeout", x.VisibilityTimeout, minVisibilitySeconds, maxVisibilitySeconds, &c.visibility},
		{"PollingWaitSeconds", x.PollingWaitSeconds, 0, maxPollingWait, &c.pollingWait},
	} {
		if err := set(f.name, f.v, f.low, f.high, f.dst); err != nil {
			return c, err
		}
	}
	if x.LoggingEnabled != nil {
		b, err := strconv.ParseBool(strings.TrimSpace(*x.LoggingEnabled))
		if err != nil {
			return c, errorf(CodeInvalidArgument, "The value of LoggingEnabled should be True or False.")
		}
		c.logging = b
	}
	return c, nil
}

var queueNameRE = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9-]*$`)

func checkQueueName(name string) *Error {
	if len(name) < 1 || len(name) > maxQueueNameLength {
		return newError(CodeQueueNameLengthError, "")
	}
	if !queueNameRE.MatchString(name) {
		return newError(CodeInvalidQueueName, "")
	}
	return nil
}

// message is a message in a queue. All fields are guarded by Server.mu.
type message struct {
	seq          int64
	id           string
	body         []byte
	md5          string // uppercase hex, as MNS reports it
	priority     int
	enqueued     time.Time
	firstDequeue time.Time
	dequeues     int
	visibleAt    time.Time // Delayed or Inactive until then
	handle       string    // the one valid receipt handle, "" when none
	handleGen    int       // how many handles were issued, so each is new
}

func bodyMD5(body []byte) string {
	sum := md5.Sum(body)
	return strings.ToUpper(hex.EncodeToString(sum[:]))
}

func (m *message) state(now time.Time) State {
	switch {
	case !now.Before(m.visibleAt):
		return StateActive
	case m.dequeues == 0:
		return StateDelayed
	default:
		return StateInactive
	}
}

// issueHandle gives m a new receipt handle valid until visibleAt. Handles look like real
// ones ("1-" + base64 of numbers) and name the message, so a handle of a message that is
// gone can still be told apart from a malformed one.
func (m *message) issueHandle() {
	m.handleGen++
	raw := fmt.Sprintf("%d-%d-%d", m.seq, m.handleGen, m.visibleAt.UnixMilli())
	m.handle = "1-" + base64.StdEncoding.EncodeToString([]byte(raw))
}

// parseHandle returns the message sequence number a receipt handle names.
func parseHandle(h string) (int64, bool) {
	rest, ok := strings.CutPrefix(h, "1-")
	if !ok {
		return 0, false
	}
	raw, err := base64.StdEncoding.DecodeString(rest)
	if err != nil {
		return 0, false
	}
	parts := strings.Split(string(raw), "-")
	if len(parts) != 3 {
		return 0, false
	}
	var nums [3]int64
	for i, p := range parts {
		n, err := strconv.ParseInt(p, 10, 64)
		if err != nil {
			return 0, false
		}
		nums[i] = n
	}
	return nums[0], true
}

// queue is one MNS queue. All fields are guarded by Server.mu.
type queue struct {
	name     string
	cfg      queueCfg
	created  time.Time
	modified time.Time
	msgs     map[int64]*message
	// changed is closed and replaced whenever messages may have become receivable, to
	// wake long pollers.
	changed chan struct{}
	waiters int
}

func newQueue(name string, cfg queueCfg, now time.Time) *queue {
	return &queue{name: name, cfg: cfg, created: now, modified: now, msgs: make(map[int64]*message), changed: make(chan struct{})}
}

func (q *queue) broadcast() {
	close(q.changed)
	q.changed = make(chan struct{})
}

// purge drops messages older than the retention period, as MNS does whatever their state.
func (q *queue) purge(now time.Time) {
	for seq, m := range q.msgs {
		if now.Sub(m.enqueued) >= time.Duration(q.cfg.retention)*time.Second {
			delete(q.msgs, seq)
		}
	}
}

// ordered returns the queue's messages in delivery order: priority (1 first), then the
// time they became visible, then send order.
func (q *queue) ordered() []*message {
	out := make([]*message, 0, len(q.msgs))
	for _, m := range q.msgs {
		out = append(out, m)
	}
	slices.SortFunc(out, func(a, b *message) int {
		if a.priority != b.priority {
			return a.priority - b.priority
		}
		if c := a.visibleAt.Compare(b.visibleAt); c != 0 {
			return c
		}
		switch {
		case a.seq < b.seq:
			return -1
		case a.seq > b.seq:
			return 1
		}
		return 0
	})
	return out
}

// take receives up to n Active messages: each becomes Inactive for the visibility timeout
// with a new receipt handle.
func (q *queue) take(now time.Time, n int) []*message {
	q.purge(now)
	var out []*message
	for _, m := range q.ordered() {
		if len(out) == n {
			break
		}
		if m.state(now) != StateActive {
			continue
		}
		m.dequeues++
		if m.firstDequeue.IsZero() {
			m.firstDequeue = now
		}
		m.visibleAt = now.Add(time.Duration(q.cfg.visibility) * time.Second)
		m.issueHandle()
		out = append(out, m)
	}
	return out
}

// peek returns up to n Active messages without changing them.
func (q *queue) peek(now time.Time, n int) []*message {
	q.purge(now)
	var out []*message
	for _, m := range q.ordered() {
		if len(out) == n {
			break
		}
		if m.state(now) == StateActive {
			out = append(out, m)
		}
	}
	return out
}

// nextVisible is the earliest time a Delayed or Inactive message becomes Active.
func (q *queue) nextVisible(now time.Time) (time.Time, bool) {
	var next time.Time
	found := false
	for _, m := range q.msgs {
		if m.visibleAt.After(now) && (!found || m.visibleAt.Before(next)) {
			next, found = m.visibleAt, true
		}
	}
	return next, found
}

func (q *queue) counts(now time.Time) (active, inactive, delayed int64) {
	q.purge(now)
	for _, m := range q.msgs {
		switch m.state(now) {
		case StateActive:
			active++
		case StateInactive:
			inactive++
		case StateDelayed:
			delayed++
		}
	}
	return active, inactive, delayed
}

// byHandle finds the message a receipt handle is valid for. A handle is valid from the
// receive (or delayed send) that issued it until the message becomes Active again; MNS
// answers MessageNotExist after that, and ReceiptHandleError for a handle it cannot read.
func (q *queue) byHandle(h string, now time.Time) (*message, *Error) {
	seq, ok := parseHandle(h)
	if !ok {
		return nil, newError(CodeReceiptHandleError, "")
	}
	q.purge(now)
	m, ok := q.msgs[seq]
	if !ok || m.handle != h || !now.Before(m.visibleAt) {
		return nil, newError(CodeMessageNotExist, "")
	}
	return m, nil
}

func (q *queue) attrs(now time.Time) queueAttrsXML {
	a, i, d := q.counts(now)
	logging := "False"
	if q.cfg.logging {
		logging = "True"
	}
	return queueAttrsXML{
		QueueName:              q.name,
		CreateTime:             q.created.Unix(),
		LastModifyTime:         q.modified.Unix(),
		DelaySeconds:           q.cfg.delay,
		MaximumMessageSize:     q.cfg.maxSize,
		MessageRetentionPeriod: q.cfg.retention,
		VisibilityTimeout:      q.cfg.visibility,
		PollingWaitSeconds:     q.cfg.pollingWait,
		ActiveMessages:         a,
		InactiveMessages:       i,
		DelayMessages:          d,
		LoggingEnabled:         logging,
	}
}
