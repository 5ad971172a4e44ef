package mns

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/enipool/enipool/localcloud/fault"
	"github.com/enipool/enipool/localcloud/record"
)

// Message is a snapshot of a message in a queue.
type Message struct {
	ID      string
	Body    []byte
	BodyMD5 string // uppercase hex, as MNS reports it
	// Priority is 1 (highest) to 16.
	Priority int
	State    State
	// EnqueueTime is when the message was sent.
	EnqueueTime time.Time
	// FirstDequeueTime is when it was first received; zero until then.
	FirstDequeueTime time.Time
	// NextVisibleTime is when a Delayed or Inactive message becomes Active.
	NextVisibleTime time.Time
	DequeueCount    int
	// ReceiptHandle is the handle that can delete the message now; empty when there is
	// none (an Active message).
	ReceiptHandle string
}

func snapshot(m *message, now time.Time) Message {
	out := Message{
		ID:               m.id,
		Body:             slices.Clone(m.body),
		BodyMD5:          m.md5,
		Priority:         m.priority,
		State:            m.state(now),
		EnqueueTime:      m.enqueued,
		FirstDequeueTime: m.firstDequeue,
		NextVisibleTime:  m.visibleAt,
		DequeueCount:     m.dequeues,
	}
	if now.Before(m.visibleAt) {
		out.ReceiptHandle = m.handle
	}
	return out
}

func (m Message) xml(peek bool) messageXML {
	x := messageXML{
		MessageID:      m.ID,
		MessageBodyMD5: m.BodyMD5,
		MessageBody:    string(m.Body),
		EnqueueTime:    m.EnqueueTime.UnixMilli(),
		DequeueCount:   m.DequeueCount,
		Priority:       m.Priority,
	}
	if !m.FirstDequeueTime.IsZero() {
		x.FirstDequeueTime = m.FirstDequeueTime.UnixMilli()
	}
	if !peek {
		x.ReceiptHandle = m.ReceiptHandle
		x.NextVisibleTime = m.NextVisibleTime.UnixMilli()
	}
	return x
}

// CreateQueue creates a queue with the MNS default attributes. Creating an existing queue
// with the same attributes succeeds, as in MNS.
func (s *Server) CreateQueue(name string) error {
	return s.CreateQueueWithConfig(name, QueueConfig{})
}

// CreateQueueWithConfig creates a queue with the given attributes.
func (s *Server) CreateQueueWithConfig(name string, c QueueConfig) error {
	if e := checkQueueName(name); e != nil {
		return e
	}
	cfg, e := c.cfg()
	if e != nil {
		return e
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if q, ok := s.queues[name]; ok {
		if q.cfg != cfg {
			return newError(CodeQueueAlreadyExist, "")
		}
		return nil
	}
	s.queues[name] = newQueue(name, cfg, s.now())
	return nil
}

// SetQueueAttributes changes a queue's attributes as the SetQueueAttributes API does: the
// non-zero fields of c replace the queue's, the others stay, and out-of-range values are
// refused (VisibilityTimeout 1 s to 12 h, and so on: QueueConfig). Messages already in flight
// keep the visibility they were received with.
func (s *Server) SetQueueAttributes(name string, c QueueConfig) error {
	var doc queueConfigXML
	str := func(n int64) *string { v := strconv.FormatInt(n, 10); return &v }
	secs := func(name string, d time.Duration) (*string, error) {
		if d == 0 {
			return nil, nil
		}
		if d%time.Second != 0 {
			return nil, errorf(CodeInvalidArgument, "The value of %s must be a whole number of seconds.", name)
		}
		return str(int64(d / time.Second)), nil
	}
	var err error
	if doc.DelaySeconds, err = secs("DelaySeconds", c.Delay); err != nil {
		return err
	}
	if doc.MessageRetentionPeriod, err = secs("MessageRetentionPeriod", c.Retention); err != nil {
		return err
	}
	if doc.VisibilityTimeout, err = secs("VisibilityTimeout", c.VisibilityTimeout); err != nil {
		return err
	}
	if doc.PollingWaitSeconds, err = secs("PollingWaitSeconds", c.PollingWait); err != nil {
		return err
	}
	if c.MaxMessageSize != 0 {
		doc.MaximumMessageSize = str(int64(c.MaxMessageSize))
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	q, ok := s.queues[name]
	if !ok {
		return newError(CodeQueueNotExist, "")
	}
	cfg, e := q.cfg.applyXML(doc)
	if e != nil {
		return e
	}
	q.cfg, q.modified = cfg, s.now()
	q.broadcast()
	return nil
}

// DeleteQueue deletes a queue and its messages; deleting a missing queue is not an error.
func (s *Server) DeleteQueue(name string) {
	s.deleteQueue(name)
}

func (s *Server) deleteQueue(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if q, ok := s.queues[name]; ok {
		delete(s.queues, name)
		q.broadcast() // long pollers find the queue gone
	}
}

// Queues returns the names of all queues, sorted.
func (s *Server) Queues() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.queueNames()
}

func (s *Server) queueNames() []string {
	names := make([]string, 0, len(s.queues))
	for n := range s.queues {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// HasQueue reports whether the queue exists.
func (s *Server) HasQueue(name string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.queues[name]
	return ok
}

// Messages returns every message of a queue in delivery order, whatever its state,
// without changing anything. It returns nil for a missing queue (see HasQueue).
func (s *Server) Messages(queue string) []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	q, ok := s.queues[queue]
	if !ok {
		return nil
	}
	now := s.now()
	q.purge(now)
	var out []Message
	for _, m := range q.ordered() {
		out = append(out, snapshot(m, now))
	}
	return out
}

// Receive takes one message from a queue as ReceiveMessage does (it becomes Inactive
// and gets a receipt handle), waiting up to wait for one to arrive. It fails with
// ErrQueueNotExist, ErrMessageNotExist when none came, or the context's error. It is not
// recorded: it observes the cloud, it is not a call of the function under test.
func (s *Server) Receive(ctx context.Context, queue string, wait time.Duration) (Message, error) {
	msgs, err := s.receive(ctx, queue, 1, &wait, false)
	if err != nil {
		return Message{}, err
	}
	return msgs[0], nil
}

// Delete deletes a received message by its receipt handle, as DeleteMessage does.
func (s *Server) Delete(queue, receiptHandle string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	q, ok := s.queues[queue]
	if !ok {
		return newError(CodeQueueNotExist, "")
	}
	m, e := q.byHandle(receiptHandle, s.now())
	if e != nil {
		return e
	}
	delete(q.msgs, m.seq)
	return nil
}

// Drain removes every message of a queue, whatever its state, and returns them in
// delivery order. It returns nil for a missing queue.
func (s *Server) Drain(queue string) []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	q, ok := s.queues[queue]
	if !ok {
		return nil
	}
	now := s.now()
	q.purge(now)
	var out []Message
	for _, m := range q.ordered() {
		out = append(out, snapshot(m, now))
	}
	clear(q.msgs)
	return out
}

// Deliver sends body to a queue in process, as the FC runtime's asynchronous onFailure
// destination does: MNS sees a SendMessage (priority 8, the queue's delay) from the FC
// service, so it is recorded as one (principal "fc.aliyuncs.com", param via=destination)
// and meets the fault plan of mns/SendMessage: outages fail it with ErrServiceUnavailable,
// error rules with their code, resets with ErrConnectionReset, latency waits (honouring
// ctx), and after-action rules store the message and then fail the delivery (error,
// ErrConnectionReset, or a wait for the hold first). No signature or authorization applies.
func (s *Server) Deliver(ctx context.Context, queue string, body []byte) error {
	_, err := s.send(ctx, "fc.aliyuncs.com", "destination", queue, body)
	if err != nil {
		return fmt.Errorf("mns: deliver to queue %s: %w", queue, err)
	}
	return nil
}

// Send sends body to a queue in process as principal's SendMessage, as Deliver does (the
// same faults, the same record, param via=in-process), and returns the message id. It is
// for simulations that call MNS's rules without HTTP; the error is an *Error,
// ErrConnectionReset or ctx's error, unwrapped, as a client would tell them apart.
func (s *Server) Send(ctx context.Context, principal, queue string, body []byte) (string, error) {
	return s.send(ctx, principal, "in-process", queue, body)
}

func (s *Server) send(ctx context.Context, principal, via, queue string, body []byte) (string, error) {
	start := time.Now()
	call := record.Call{
		Time: s.now(), Service: service, Action: "SendMessage", Principal: principal,
		RequestID: s.requestID(),
		Params: map[string]string{
			"queue": queue, "via": via,
			"bodySize": strconv.Itoa(len(body)), "bodyMD5": bodyMD5(body),
		},
	}
	err := s.deliver(ctx, queue, body, &call)
	if err == nil {
		err = s.loseAnswer(ctx, &call)
	}
	var e *Error
	switch {
	case errors.As(err, &e):
		call.Code, call.HTTPStatus = e.Code, e.Status
	case err != nil:
		call.HTTPStatus = 499
	default:
		call.HTTPStatus = 201
	}
	call.Latency = time.Since(start)
	if s.recorder != nil {
		s.recorder.Add(call)
	}
	if err != nil {
		return "", err
	}
	return call.Params["messageId"], nil
}

func (s *Server) deliver(ctx context.Context, queue string, body []byte, call *record.Call) error {
	if s.faults != nil {
		d := s.faults.Decide(service, "SendMessage")
		if d.Delay > 0 {
			call.Fault = "delay"
			t := time.NewTimer(d.Delay)
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
				return ctx.Err()
			}
		}
		switch {
		case d.Outage:
			call.Fault = "outage"
			return newError(CodeServiceUnavailable, "")
		case d.Error != nil && d.Error.Reset:
			call.Fault = "reset"
			return ErrConnectionReset
		case d.Error != nil:
			call.Fault = "error"
			return ruleError(d.Error)
		}
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	q, ok := s.queues[queue]
	if !ok {
		return newError(CodeQueueNotExist, "")
	}
	b := string(body)
	in, e := parseSend(sendMessageXML{MessageBody: &b}, q)
	if e != nil {
		return e
	}
	m := s.enqueue(q, in, s.now())
	call.Params["messageId"] = m.id
	return nil
}

// loseAnswer applies an after-action fault to a delivery whose message is stored: the
// caller gets an error, a reset, or a reset after the hold (or its context's end).
func (s *Server) loseAnswer(ctx context.Context, call *record.Call) error {
	if s.faults == nil {
		return nil
	}
	a := s.faults.DecideAfter(service, "SendMessage")
	if a == nil {
		return nil
	}
	call.Fault = strings.TrimPrefix(call.Fault+",after-action-"+a.Kind, ",")
	switch a.Kind {
	case fault.AfterError:
		return afterError(a)
	case fault.AfterTimeout:
		t := time.NewTimer(a.HoldFor())
		defer t.Stop()
		select {
		case <-t.C:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return ErrConnectionReset
}

// Destination is a queue seen as a delivery target: what the FC runtime emulator's
// onFailure destination needs.
type Destination struct {
	s     *Server
	queue string
}

// Queue returns the named queue as a Destination. The queue need not exist yet; Deliver
// fails with ErrQueueNotExist while it does not.
func (s *Server) Queue(name string) Destination {
	return Destination{s: s, queue: name}
}

// Name is the queue's name.
func (d Destination) Name() string { return d.queue }

// Deliver sends body to the queue; see Server.Deliver.
func (d Destination) Deliver(ctx context.Context, body []byte) error {
	if d.s == nil {
		return errors.New("mns: Deliver on a zero Destination; use Server.Queue")
	}
	return d.s.Deliver(ctx, d.queue, body)
}

// waiters reports how many long polls wait on a queue; tests use it to know a receive is
// parked before they send.
func (s *Server) waiters(queue string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if q, ok := s.queues[queue]; ok {
		return q.waiters
	}
	return 0
}
