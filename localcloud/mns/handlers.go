package mns

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

func (s *Server) dispatch(x *exchange, rt route, body []byte) {
	switch rt.action {
	case "SendMessage":
		s.serveSend(x, rt, body)
	case "BatchSendMessage":
		s.serveBatchSend(x, rt, body)
	case "ReceiveMessage", "BatchReceiveMessage", "PeekMessage", "BatchPeekMessage":
		s.serveReceive(x, rt)
	case "DeleteMessage":
		s.serveDelete(x, rt)
	case "BatchDeleteMessage":
		s.serveBatchDelete(x, rt, body)
	case "ChangeMessageVisibility":
		s.serveChangeVisibility(x, rt)
	case "GetQueueAttributes":
		s.serveGetAttributes(x, rt)
	case "CreateQueue", "SetQueueAttributes":
		s.servePutQueue(x, rt, body)
	case "DeleteQueue":
		s.serveDeleteQueue(x, rt)
	case "ListQueue":
		s.serveListQueue(x)
	default:
		x.fail(newError(CodeInvalidRequestURL, ""))
	}
}

// sendInput is one validated message to enqueue.
type sendInput struct {
	body     []byte
	delay    int64
	priority int
}

// parseSend validates a <Message> against the queue q.
func parseSend(doc sendMessageXML, q *queue) (sendInput, *Error) {
	if doc.MessageBody == nil {
		return sendInput{}, errorf(CodeInvalidArgument, "The XML you provided did not validate against our published schema, cause by Element MessageBody.")
	}
	in := sendInput{body: []byte(*doc.MessageBody), delay: q.cfg.delay, priority: defaultPriority}
	if n := int64(len(in.body)); n < 1 || n > q.cfg.maxSize {
		return sendInput{}, rangeError("MessageBody", 1, q.cfg.maxSize, "bytes")
	}
	if doc.DelaySeconds != nil {
		n, err := strconv.ParseInt(strings.TrimSpace(*doc.DelaySeconds), 10, 64)
		if err != nil || n < 0 || n > maxDelaySeconds {
			return sendInput{}, rangeError("DelaySeconds", 0, maxDelaySeconds, "seconds")
		}
		in.delay = n
	}
	if doc.Priority != nil {
		n, err := strconv.Atoi(strings.TrimSpace(*doc.Priority))
		if err != nil || n < minPriority || n > maxPriority {
			return sendInput{}, rangeError("Priority", minPriority, maxPriority, "")
		}
		in.priority = n
	}
	return in, nil
}

// enqueue adds a validated message to q. Callers hold s.mu.
func (s *Server) enqueue(q *queue, in sendInput, now time.Time) *message {
	s.seq++
	m := &message{
		seq:       s.seq,
		id:        fmt.Sprintf("%s-%d-%X-%09d", s.idPrefix, 1, now.UnixMilli(), s.seq),
		body:      in.body,
		md5:       bodyMD5(in.body),
		priority:  in.priority,
		enqueued:  now,
		visibleAt: now.Add(time.Duration(in.delay) * time.Second),
	}
	if in.delay > 0 {
		// A delayed message gets a receipt handle at once, so that it can be deleted or
		// have its visibility changed before it is ever received.
		m.issueHandle()
	}
	q.msgs[m.seq] = m
	q.broadcast()
	return m
}

func (s *Server) serveSend(x *exchange, rt route, body []byte) {
	var doc sendMessageXML
	if e := decodeXML(body, &doc); e != nil {
		x.fail(e)
		return
	}
	if doc.MessageBody != nil {
		x.param("bodySize", strconv.Itoa(len(*doc.MessageBody)))
		x.param("bodyMD5", bodyMD5([]byte(*doc.MessageBody)))
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	q, ok := s.queues[rt.queue]
	if !ok {
		x.fail(newError(CodeQueueNotExist, ""))
		return
	}
	in, e := parseSend(doc, q)
	if e != nil {
		x.fail(e)
		return
	}
	m := s.enqueue(q, in, s.now())
	x.param("priority", strconv.Itoa(in.priority))
	x.param("delaySeconds", strconv.FormatInt(in.delay, 10))
	x.param("messageId", m.id)
	res := sendResultXML{MessageID: m.id, MessageBodyMD5: m.md5}
	if in.delay > 0 {
		res.ReceiptHandle = m.handle
	}
	x.reply(http.StatusCreated, res)
}

func (s *Server) serveBatchSend(x *exchange, rt route, body []byte) {
	var doc batchSendXML
	if e := decodeXML(body, &doc); e != nil {
		x.fail(e)
		return
	}
	x.param("count", strconv.Itoa(len(doc.Messages)))
	s.mu.Lock()
	defer s.mu.Unlock()
	q, ok := s.queues[rt.queue]
	if !ok {
		x.fail(newError(CodeQueueNotExist, ""))
		return
	}
	if n := len(doc.Messages); n < 1 || n > maxBatch {
		x.fail(errorf(CodeInvalidArgument, "The count of Message should between 1 and %d.", maxBatch))
		return
	}
	// MNS validates the whole batch; an invalid message refuses the request, so nothing
	// is sent twice when a client fixes it and retries.
	ins := make([]sendInput, 0, len(doc.Messages))
	total := 0
	for _, d := range doc.Messages {
		in, e := parseSend(d, q)
		if e != nil {
			x.fail(e)
			return
		}
		total += len(in.body)
		ins = append(ins, in)
	}
	x.param("bodySize", strconv.Itoa(total))
	if total > maxMessageSize {
		x.fail(rangeError("total size of the Messages", 1, maxMessageSize, "bytes"))
		return
	}
	now := s.now()
	res := batchSendResultXML{}
	ids := make([]string, 0, len(ins))
	for _, in := range ins {
		m := s.enqueue(q, in, now)
		e := batchSendEntryXML{MessageID: m.id, MessageBodyMD5: m.md5}
		if in.delay > 0 {
			e.ReceiptHandle = m.handle
		}
		res.Messages = append(res.Messages, e)
		ids = append(ids, m.id)
	}
	x.param("messageIds", strings.Join(ids, ","))
	x.reply(http.StatusCreated, res)
}

// receive takes (or peeks at) up to n messages of a queue, waiting up to wait for the
// first one to arrive; nil wait means the queue's PollingWaitSeconds. It returns an *Error
// (QueueNotExist, or MessageNotExist when nothing came) or the context's error.
func (s *Server) receive(ctx context.Context, name string, n int, wait *time.Duration, peek bool) ([]Message, error) {
	var deadline time.Time
	for first := true; ; first = false {
		s.mu.Lock()
		q, ok := s.queues[name]
		if !ok {
			s.mu.Unlock()
			return nil, newError(CodeQueueNotExist, "")
		}
		now := s.now()
		var got []*message
		if peek {
			got = q.peek(now, n)
		} else {
			got = q.take(now, n)
		}
		if len(got) > 0 {
			out := make([]Message, len(got))
			for i, m := range got {
				out[i] = snapshot(m, now)
			}
			s.mu.Unlock()
			return out, nil
		}
		if first {
			w := time.Duration(q.cfg.pollingWait) * time.Second
			if wait != nil {
				w = *wait
			}
			deadline = time.Now().Add(w)
		}
		remaining := time.Until(deadline)
		if remaining <= 0 || peek || s.closed {
			s.mu.Unlock()
			return nil, newError(CodeMessageNotExist, "")
		}
		if next, ok := q.nextVisible(now); ok && next.Sub(now) < remaining {
			remaining = next.Sub(now)
		}
		changed := q.changed
		q.waiters++
		s.mu.Unlock()

		err := s.wait(ctx, changed, remaining)

		s.mu.Lock()
		q.waiters--
		s.mu.Unlock()
		if err != nil {
			return nil, err
		}
	}
}

// wait blocks until the queue changes, d passes, the server closes or ctx ends.
func (s *Server) wait(ctx context.Context, changed <-chan struct{}, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-changed:
	case <-t.C:
	case <-s.done:
	case <-ctx.Done():
		return fmt.Errorf("mns: waiting for a message: %w", ctx.Err())
	}
	return nil
}

func (s *Server) serveReceive(x *exchange, rt route) {
	q := x.r.URL.Query()
	peek := strings.HasSuffix(rt.action, "PeekMessage")
	batch := strings.HasPrefix(rt.action, "Batch")
	n := 1
	if batch {
		v, err := strconv.Atoi(q.Get("numOfMessages"))
		if err != nil || v < 1 || v > maxBatch {
			x.fail(rangeError("numOfMessages", 1, maxBatch, ""))
			return
		}
		n = v
		x.param("numOfMessages", strconv.Itoa(n))
	}
	var wait *time.Duration
	if q.Has("waitseconds") {
		v, err := strconv.Atoi(q.Get("waitseconds"))
		if err != nil || v < 0 || v > maxPollingWait {
			x.fail(rangeError("waitseconds", 0, maxPollingWait, "seconds"))
			return
		}
		d := time.Duration(v) * time.Second
		wait = &d
		x.param("waitseconds", strconv.Itoa(v))
	}
	msgs, err := s.receive(x.r.Context(), rt.queue, n, wait, peek)
	var e *Error
	switch {
	case errors.As(err, &e):
		x.fail(e)
		return
	case err != nil:
		x.abandon()
		return
	}
	ids := make([]string, len(msgs))
	docs := make([]messageXML, len(msgs))
	for i, m := range msgs {
		ids[i] = m.ID
		docs[i] = m.xml(peek)
	}
	x.param("messageIds", strings.Join(ids, ","))
	if batch {
		x.reply(http.StatusOK, messagesXML{Messages: docs})
		return
	}
	x.reply(http.StatusOK, docs[0])
}

func (s *Server) serveDelete(x *exchange, rt route) {
	h := x.r.URL.Query().Get("ReceiptHandle")
	x.param("ReceiptHandle", h)
	if h == "" {
		x.fail(newError(CodeMissingReceiptHandle, ""))
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	q, ok := s.queues[rt.queue]
	if !ok {
		x.fail(newError(CodeQueueNotExist, ""))
		return
	}
	m, e := q.byHandle(h, s.now())
	if e != nil {
		x.fail(e)
		return
	}
	delete(q.msgs, m.seq)
	x.param("messageId", m.id)
	x.reply(http.StatusNoContent, nil)
}

func (s *Server) serveBatchDelete(x *exchange, rt route, body []byte) {
	if len(body) == 0 {
		x.fail(newError(CodeMissingReceiptHandle, ""))
		return
	}
	var doc receiptHandlesXML
	if e := decodeXML(body, &doc); e != nil {
		x.fail(e)
		return
	}
	x.param("count", strconv.Itoa(len(doc.Handles)))
	s.mu.Lock()
	defer s.mu.Unlock()
	q, ok := s.queues[rt.queue]
	if !ok {
		x.fail(newError(CodeQueueNotExist, ""))
		return
	}
	if n := len(doc.Handles); n < 1 || n > maxBatch {
		x.fail(errorf(CodeInvalidArgument, "The count of ReceiptHandle should between 1 and %d.", maxBatch))
		return
	}
	now := s.now()
	var failed deleteErrorsXML
	for _, h := range doc.Handles {
		m, e := q.byHandle(h, now)
		if e != nil {
			failed.Errors = append(failed.Errors, deleteErrorXML{ErrorCode: e.Code, ErrorMessage: e.Message, ReceiptHandle: h})
			continue
		}
		delete(q.msgs, m.seq)
	}
	if len(failed.Errors) > 0 {
		// Partial failure: the handles that could be deleted are gone; the answer lists
		// the others, in an <Errors> document rather than an <Error>.
		x.call.Code = failed.Errors[0].ErrorCode
		x.param("failed", strconv.Itoa(len(failed.Errors)))
		x.reply(http.StatusNotFound, failed)
		return
	}
	x.reply(http.StatusNoContent, nil)
}

func (s *Server) serveChangeVisibility(x *exchange, rt route) {
	q := x.r.URL.Query()
	h := q.Get("ReceiptHandle")
	x.param("ReceiptHandle", h)
	if h == "" {
		x.fail(newError(CodeMissingReceiptHandle, ""))
		return
	}
	if !q.Has("VisibilityTimeout") {
		x.fail(newError(CodeMissingVisibilityTimeout, ""))
		return
	}
	v, err := strconv.ParseInt(q.Get("VisibilityTimeout"), 10, 64)
	if err != nil || v < minVisibilitySeconds || v > maxVisibilitySeconds {
		x.fail(rangeError("VisibilityTimeout", minVisibilitySeconds, maxVisibilitySeconds, "seconds"))
		return
	}
	x.param("VisibilityTimeout", strconv.FormatInt(v, 10))
	s.mu.Lock()
	defer s.mu.Unlock()
	qu, ok := s.queues[rt.queue]
	if !ok {
		x.fail(newError(CodeQueueNotExist, ""))
		return
	}
	now := s.now()
	m, e := qu.byHandle(h, now)
	if e != nil {
		x.fail(e)
		return
	}
	m.visibleAt = now.Add(time.Duration(v) * time.Second)
	m.issueHandle()
	qu.broadcast() // long pollers re-arm their timers for the new visible time
	x.reply(http.StatusOK, changeVisibilityXML{ReceiptHandle: m.handle, NextVisibleTime: m.visibleAt.UnixMilli()})
}

func (s *Server) serveGetAttributes(x *exchange, rt route) {
	s.mu.Lock()
	defer s.mu.Unlock()
	q, ok := s.queues[rt.queue]
	if !ok {
		x.fail(newError(CodeQueueNotExist, ""))
		return
	}
	x.reply(http.StatusOK, q.attrs(s.now()))
}

func (s *Server) servePutQueue(x *exchange, rt route, body []byte) {
	var doc queueConfigXML
	if len(body) > 0 {
		if e := decodeXML(body, &doc); e != nil {
			x.fail(e)
			return
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	q, exists := s.queues[rt.queue]
	if rt.action == "SetQueueAttributes" {
		if !exists {
			x.fail(newError(CodeQueueNotExist, ""))
			return
		}
		cfg, e := q.cfg.applyXML(doc)
		if e != nil {
			x.fail(e)
			return
		}
		q.cfg, q.modified = cfg, now
		q.broadcast()
		x.reply(http.StatusNoContent, nil)
		return
	}
	if e := checkQueueName(rt.queue); e != nil {
		x.fail(e)
		return
	}
	cfg, e := defaultCfg().applyXML(doc)
	if e != nil {
		x.fail(e)
		return
	}
	if exists {
		// Creating an existing queue is idempotent only with the same attributes.
		if q.cfg == cfg {
			x.reply(http.StatusNoContent, nil)
			return
		}
		x.fail(newError(CodeQueueAlreadyExist, ""))
		return
	}
	s.queues[rt.queue] = newQueue(rt.queue, cfg, now)
	x.w.Header().Set("Location", fmt.Sprintf("http://%s/queues/%s", x.r.Host, rt.queue))
	x.reply(http.StatusCreated, nil)
}

func (s *Server) serveDeleteQueue(x *exchange, rt route) {
	s.deleteQueue(rt.queue)
	x.reply(http.StatusNoContent, nil)
}

func (s *Server) serveListQueue(x *exchange) {
	h := x.r.Header
	prefix, marker := h.Get("x-mns-prefix"), h.Get("x-mns-marker")
	limit := 1000
	if v := h.Get("x-mns-ret-number"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 1000 {
			x.fail(rangeError("x-mns-ret-number", 1, 1000, ""))
			return
		}
		limit = n
	}
	withMeta := strings.EqualFold(h.Get("x-mns-with-meta"), "true")
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	var res listQueueXML
	for _, name := range s.queueNames() {
		if !strings.HasPrefix(name, prefix) || name < marker {
			continue
		}
		if len(res.Queues) == limit {
			res.NextMarker = name
			break
		}
		e := listQueueEntryXML{QueueURL: fmt.Sprintf("http://%s/queues/%s", x.r.Host, name)}
		if withMeta {
			a := s.queues[name].attrs(now)
			e.QueueName, e.CreateTime, e.LastModifyTime = a.QueueName, a.CreateTime, a.LastModifyTime
			e.DelaySeconds, e.MaximumMessageSize, e.MessageRetentionPeriod = &a.DelaySeconds, a.MaximumMessageSize, a.MessageRetentionPeriod
			e.VisibilityTimeout, e.PollingWaitSeconds = a.VisibilityTimeout, &a.PollingWaitSeconds
			e.ActiveMessages, e.InactiveMessages, e.DelayMessages = &a.ActiveMessages, &a.InactiveMessages, &a.DelayMessages
			e.LoggingEnabled = a.LoggingEnabled
		}
		res.Queues = append(res.Queues, e)
	}
	x.reply(http.StatusOK, res)
}
