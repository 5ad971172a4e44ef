package mns_test

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	alimns "github.com/aliyun/aliyun-mns-go-sdk"
	gerrors "github.com/gogap/errors"

	"github.com/enipool/enipool/localcloud/auth"
	"github.com/enipool/enipool/localcloud/fault"
	"github.com/enipool/enipool/localcloud/mns"
)

// The FC runtime emulator binds its onFailure destination to this interface.
var _ interface {
	Deliver(ctx context.Context, body []byte) error
} = mns.Destination{}

func upperMD5(s string) string {
	sum := md5.Sum([]byte(s))
	return strings.ToUpper(hex.EncodeToString(sum[:]))
}

func TestSendReceiveDeleteRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		body string
	}{
		{"plain", "hello"},
		{"needs XML escaping", `{"eni":"eni-1","note":"<a&b>\"q\"","nl":"x` + "\n\t" + `y"}`},
		{"unicode", "ENI 弹性网卡 ✓"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			e.mustCreate("dlq", mns.QueueConfig{})
			q := e.queue("dlq")

			sent, err := q.SendMessage(alimns.MessageSendRequest{MessageBody: tt.body, Priority: 8})
			if err != nil {
				t.Fatal(err)
			}
			if sent.MessageBodyMD5 != upperMD5(tt.body) {
				t.Errorf("MessageBodyMD5 = %s, want %s", sent.MessageBodyMD5, upperMD5(tt.body))
			}
			if sent.Code != "201" || sent.RequestId == "" {
				t.Errorf("status %s, request id %q; want 201 and an id", sent.Code, sent.RequestId)
			}
			call := e.lastCall("SendMessage")
			if call.HTTPStatus != http.StatusCreated || call.Principal != "enipool-fn" || call.Params["queue"] != "dlq" {
				t.Errorf("recorded %+v", call)
			}
			if call.Params["bodyMD5"] != upperMD5(tt.body) || call.Params["bodySize"] != fmt.Sprint(len(tt.body)) {
				t.Errorf("recorded params %v, want body size and MD5", call.Params)
			}
			for k, v := range call.Params {
				if strings.Contains(v, tt.body) || strings.Contains(v, e.role.Token) || strings.Contains(v, e.role.Secret) {
					t.Errorf("recorded param %s leaks the body or a secret: %q", k, v)
				}
			}

			got, err := receive(q, 0)
			if err != nil {
				t.Fatal(err)
			}
			if got.MessageBody != tt.body || got.MessageId != sent.MessageId || got.MessageBodyMD5 != sent.MessageBodyMD5 {
				t.Errorf("received %+v, want the sent message", got)
			}
			if got.DequeueCount != 1 || got.Priority != 8 || got.ReceiptHandle == "" ||
				got.FirstDequeueTime == 0 || got.EnqueueTime == 0 || got.NextVisibleTime <= got.FirstDequeueTime {
				t.Errorf("received attributes %+v", got)
			}
			msgs := e.srv.Messages("dlq")
			if len(msgs) != 1 || msgs[0].State != mns.StateInactive || msgs[0].ReceiptHandle != got.ReceiptHandle {
				t.Fatalf("after receive the queue holds %+v, want one Inactive message", msgs)
			}

			if err := q.DeleteMessage(got.ReceiptHandle); err != nil {
				t.Fatal(err)
			}
			if msgs := e.srv.Messages("dlq"); len(msgs) != 0 {
				t.Fatalf("after delete the queue holds %+v", msgs)
			}
			if c := e.lastCall("DeleteMessage"); c.HTTPStatus != http.StatusNoContent || c.Params["messageId"] != sent.MessageId {
				t.Errorf("recorded delete %+v", c)
			}
		})
	}
}

func TestBatchSendReceiveDelete(t *testing.T) {
	e := newEnv(t)
	e.mustCreate("work", mns.QueueConfig{})
	q := e.queue("work")

	bodies := []string{"a", "b", "c"}
	var reqs []alimns.MessageSendRequest
	for _, b := range bodies {
		reqs = append(reqs, alimns.MessageSendRequest{MessageBody: b, Priority: 8})
	}
	sent, err := q.BatchSendMessage(reqs...)
	if err != nil {
		t.Fatal(err)
	}
	if len(sent.Messages) != 3 {
		t.Fatalf("batch send answered %d entries, want 3", len(sent.Messages))
	}
	ids := map[string]bool{}
	for i, m := range sent.Messages {
		if m.MessageId == "" || m.MessageBodyMD5 != upperMD5(bodies[i]) || ids[m.MessageId] {
			t.Errorf("entry %d = %+v (ids must be unique)", i, m)
		}
		ids[m.MessageId] = true
	}

	got, err := batchReceive(q, 16)
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Messages) != 3 {
		t.Fatalf("batch receive got %d messages, want 3", len(got.Messages))
	}
	var handles []string
	for i, m := range got.Messages {
		if m.MessageBody != bodies[i] {
			t.Errorf("message %d body %q, want %q (send order within a priority)", i, m.MessageBody, bodies[i])
		}
		handles = append(handles, m.ReceiptHandle)
	}
	if _, err := batchReceive(q, 16); !alimns.ERR_MNS_MESSAGE_NOT_EXIST.IsEqual(err) {
		t.Fatalf("receive from a queue with only in-flight messages: %v, want MessageNotExist", err)
	}

	// One stale handle among good ones: the good ones are deleted, the stale one reported.
	if err := q.DeleteMessage(handles[0]); err != nil {
		t.Fatal(err)
	}
	resp, err := q.BatchDeleteMessage(handles...)
	if !alimns.ERR_MNS_BATCH_OP_FAIL.IsEqual(err) {
		t.Fatalf("batch delete with a stale handle: %v, want a batch failure", err)
	}
	if len(resp.FailedMessages) != 1 || resp.FailedMessages[0].ReceiptHandle != handles[0] ||
		resp.FailedMessages[0].ErrorCode != mns.CodeMessageNotExist {
		t.Errorf("failed entries %+v, want the stale handle with MessageNotExist", resp.FailedMessages)
	}
	if msgs := e.srv.Messages("work"); len(msgs) != 0 {
		t.Errorf("queue still holds %d messages", len(msgs))
	}
	if c := e.lastCall("BatchDeleteMessage"); c.HTTPStatus != http.StatusNotFound || c.Code != mns.CodeMessageNotExist {
		t.Errorf("recorded %+v", c)
	}

	// A clean batch delete answers 204.
	if _, err := q.BatchSendMessage(reqs...); err != nil {
		t.Fatal(err)
	}
	got, err = batchReceive(q, 2)
	if err != nil || len(got.Messages) != 2 {
		t.Fatalf("batch receive of 2: %d messages, %v", len(got.Messages), err)
	}
	if _, err := q.BatchDeleteMessage(got.Messages[0].ReceiptHandle, got.Messages[1].ReceiptHandle); err != nil {
		t.Fatal(err)
	}
	if msgs := e.srv.Messages("work"); len(msgs) != 1 || msgs[0].State != mns.StateActive {
		t.Errorf("after deleting 2 of 3 the queue holds %+v", msgs)
	}
}

func TestBatchSendIsValidatedAsAWhole(t *testing.T) {
	e := newEnv(t)
	e.mustCreate("work", mns.QueueConfig{})
	q := e.queue("work")
	tooMany := make([]alimns.MessageSendRequest, 17)
	for i := range tooMany {
		tooMany[i] = alimns.MessageSendRequest{MessageBody: "x", Priority: 8}
	}
	tests := []struct {
		name string
		msgs []alimns.MessageSendRequest
	}{
		{"one bad priority", []alimns.MessageSendRequest{{MessageBody: "ok", Priority: 8}, {MessageBody: "bad", Priority: 0}}},
		{"17 messages", tooMany},
		{"over 64 KiB in total", []alimns.MessageSendRequest{
			{MessageBody: strings.Repeat("a", 40000), Priority: 8}, {MessageBody: strings.Repeat("b", 40000), Priority: 8}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := q.BatchSendMessage(tt.msgs...)
			if !alimns.ERR_MNS_INVALID_ARGUMENT.IsEqual(err) {
				t.Fatalf("err = %v, want InvalidArgument", err)
			}
			if n := len(e.srv.Messages("work")); n != 0 {
				t.Fatalf("%d messages were sent from a refused batch", n)
			}
		})
	}
}

func TestLongPollWakesOnSend(t *testing.T) {
	e := newEnv(t)
	e.mustCreate("work", mns.QueueConfig{})
	type result struct {
		msg alimns.MessageReceiveResponse
		err error
	}
	done := make(chan result, 1)
	consumer := e.queue("work")
	go func() {
		m, err := receive(consumer, 20)
		done <- result{m, err}
	}()
	deadline := time.Now().Add(10 * time.Second)
	for e.srv.Waiters("work") == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the receive never parked")
		}
		time.Sleep(5 * time.Millisecond)
	}
	sent, err := e.queue("work").SendMessage(alimns.MessageSendRequest{MessageBody: "wake", Priority: 8})
	if err != nil {
		t.Fatal(err)
	}
	r := <-done
	if r.err != nil || r.msg.MessageId != sent.MessageId {
		t.Fatalf("long poll got %+v, %v; want the message sent while it waited", r.msg, r.err)
	}
	if c := e.lastCall("ReceiveMessage"); c.Params["waitseconds"] != "20" || c.HTTPStatus != http.StatusOK {
		t.Errorf("recorded %+v", c)
	}
}

func TestLongPollEndsWithTheServer(t *testing.T) {
	e := newEnv(t)
	e.mustCreate("work", mns.QueueConfig{})
	done := make(chan error, 1)
	go func() {
		_, err := receive(e.queue("work"), 30)
		done <- err
	}()
	for e.srv.Waiters("work") == 0 {
		time.Sleep(5 * time.Millisecond)
	}
	e.srv.Close()
	if err := <-done; !alimns.ERR_MNS_MESSAGE_NOT_EXIST.IsEqual(err) {
		t.Fatalf("long poll across Close: %v, want MessageNotExist", err)
	}
}

func TestLongPollHonoursContext(t *testing.T) {
	e := newEnv(t)
	e.mustCreate("work", mns.QueueConfig{})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := e.srv.Receive(ctx, "work", 30*time.Second)
		done <- err
	}()
	for e.srv.Waiters("work") == 0 {
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Receive after cancel: %v, want context.Canceled", err)
	}
	if n := e.srv.Waiters("work"); n != 0 {
		t.Fatalf("%d waiters left behind", n)
	}
}

func TestVisibilityTimeout(t *testing.T) {
	e := newEnv(t)
	e.mustCreate("work", mns.QueueConfig{VisibilityTimeout: 30 * time.Second})
	q := e.queue("work")
	sent, err := q.SendMessage(alimns.MessageSendRequest{MessageBody: "retry me", Priority: 8})
	if err != nil {
		t.Fatal(err)
	}
	first, err := receive(q, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := receive(q, 0); !alimns.ERR_MNS_MESSAGE_NOT_EXIST.IsEqual(err) {
		t.Fatalf("second receive while in flight: %v, want MessageNotExist", err)
	}

	e.clock.Advance(31 * time.Second)
	second, err := receive(q, 0)
	if err != nil {
		t.Fatal(err)
	}
	if second.MessageId != sent.MessageId || second.DequeueCount != 2 || second.FirstDequeueTime != first.FirstDequeueTime ||
		second.ReceiptHandle == first.ReceiptHandle {
		t.Fatalf("after the visibility timeout got %+v; want the same message, dequeued twice, with a new handle", second)
	}
	if err := q.DeleteMessage(first.ReceiptHandle); !alimns.ERR_MNS_MESSAGE_NOT_EXIST.IsEqual(err) {
		t.Fatalf("delete with the first, expired handle: %v, want MessageNotExist", err)
	}

	// ChangeMessageVisibility extends the lease and replaces the handle.
	changed, err := q.ChangeMessageVisibility(second.ReceiptHandle, 100)
	if err != nil {
		t.Fatal(err)
	}
	if changed.ReceiptHandle == second.ReceiptHandle || changed.NextVisibleTime != e.clock.Now().Add(100*time.Second).UnixMilli() {
		t.Fatalf("ChangeMessageVisibility answered %+v", changed)
	}
	e.clock.Advance(60 * time.Second)
	if _, err := receive(q, 0); !alimns.ERR_MNS_MESSAGE_NOT_EXIST.IsEqual(err) {
		t.Fatalf("receive inside the extended lease: %v, want MessageNotExist", err)
	}
	if err := q.DeleteMessage(changed.ReceiptHandle); err != nil {
		t.Fatal(err)
	}
}

func TestDelayedMessage(t *testing.T) {
	e := newEnv(t)
	e.mustCreate("work", mns.QueueConfig{})
	q := e.queue("work")
	sent, err := q.SendMessage(alimns.MessageSendRequest{MessageBody: "later", DelaySeconds: 60, Priority: 8})
	if err != nil {
		t.Fatal(err)
	}
	if sent.ReceiptHandle == "" {
		t.Error("a delayed send answered no receipt handle")
	}
	if msgs := e.srv.Messages("work"); len(msgs) != 1 || msgs[0].State != mns.StateDelayed {
		t.Fatalf("queue holds %+v, want one Delayed message", msgs)
	}
	if _, err := receive(q, 0); !alimns.ERR_MNS_MESSAGE_NOT_EXIST.IsEqual(err) {
		t.Fatalf("receive before the delay ends: %v, want MessageNotExist", err)
	}
	e.clock.Advance(61 * time.Second)
	got, err := receive(q, 0)
	if err != nil || got.MessageId != sent.MessageId || got.DequeueCount != 1 {
		t.Fatalf("after the delay: %+v, %v", got, err)
	}
}

func TestPriorityOrder(t *testing.T) {
	e := newEnv(t)
	e.mustCreate("work", mns.QueueConfig{})
	q := e.queue("work")
	for _, m := range []struct {
		body string
		prio int64
	}{{"p8", 8}, {"p1-first", 1}, {"p16", 16}, {"p1-second", 1}} {
		if _, err := q.SendMessage(alimns.MessageSendRequest{MessageBody: m.body, Priority: m.prio}); err != nil {
			t.Fatal(err)
		}
	}
	got, err := batchReceive(q, 16)
	if err != nil {
		t.Fatal(err)
	}
	var order []string
	for _, m := range got.Messages {
		order = append(order, m.MessageBody)
	}
	if want := "p1-first,p1-second,p8,p16"; strings.Join(order, ",") != want {
		t.Fatalf("delivery order %v, want %s", order, want)
	}
}

func TestGetQueueAttributesCounts(t *testing.T) {
	e := newEnv(t)
	mgr := alimns.NewMNSQueueManager(e.clientFor(e.root))
	if err := mgr.CreateQueue("work", 0, 65536, 345600, 30, 0, 2); err != nil {
		t.Fatal(err)
	}
	q := e.queue("work")
	for i := range 4 {
		if _, err := q.SendMessage(alimns.MessageSendRequest{MessageBody: fmt.Sprint("m", i), Priority: 8}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := q.SendMessage(alimns.MessageSendRequest{MessageBody: "delayed", DelaySeconds: 300, Priority: 8}); err != nil {
		t.Fatal(err)
	}
	if _, err := receive(q, 0); err != nil {
		t.Fatal(err)
	}
	attr, err := mgr.GetQueueAttributes("work")
	if err != nil {
		t.Fatal(err)
	}
	if attr.ActiveMessages != 3 || attr.InactiveMessages != 1 || attr.DelayMessages != 1 {
		t.Errorf("counts active/inactive/delayed = %d/%d/%d, want 3/1/1", attr.ActiveMessages, attr.InactiveMessages, attr.DelayMessages)
	}
	if attr.QueueName != "work" || attr.VisibilityTimeout != 30 || attr.MaxMessageSize != 65536 || attr.MessageRetentionPeriod != 345600 || attr.CreateTime == 0 {
		t.Errorf("attributes %+v", attr)
	}

	// Creating it again with the same attributes is idempotent; with others it conflicts.
	if err := mgr.CreateQueue("work", 0, 65536, 345600, 30, 0, 2); !alimns.ERR_MNS_QUEUE_ALREADY_EXIST_AND_HAVE_SAME_ATTR.IsEqual(err) {
		t.Errorf("re-create with the same attributes: %v", err)
	}
	if err := mgr.CreateQueue("work", 0, 65536, 345600, 60, 0, 2); !alimns.ERR_MNS_QUEUE_ALREADY_EXIST.IsEqual(err) {
		t.Errorf("re-create with other attributes: %v, want QueueAlreadyExist", err)
	}
	list, err := mgr.ListQueue("", 10, "wo")
	if err != nil || len(list.Queues) != 1 || !strings.HasSuffix(list.Queues[0].QueueURL, "/queues/work") {
		t.Errorf("ListQueue = %+v, %v", list, err)
	}
	if err := mgr.DeleteQueue("work"); err != nil {
		t.Fatal(err)
	}
	if _, err := mgr.GetQueueAttributes("work"); !alimns.ERR_MNS_QUEUE_NOT_EXIST.IsEqual(err) {
		t.Errorf("attributes of a deleted queue: %v, want QueueNotExist", err)
	}
}

func TestRequestVerification(t *testing.T) {
	send := func(q alimns.AliMNSQueue, body string, prio, delay int64) error {
		_, err := q.SendMessage(alimns.MessageSendRequest{MessageBody: body, Priority: prio, DelaySeconds: delay})
		return err
	}
	tests := []struct {
		name     string
		call     func(e *env) error
		template gerrors.ErrCodeTemplate
		code     string
		status   int
		action   string
	}{
		{
			name: "unknown AccessKeyId",
			call: func(e *env) error {
				return send(alimns.NewMNSQueue("dlq", e.clientFor(auth.Key{ID: "LTAInobody", Secret: "x"})), "m", 8, 0)
			},
			template: alimns.ERR_MNS_INVALID_ACCESS_KEY_ID, code: mns.CodeInvalidAccessKeyID, status: 403,
		},
		{
			name: "wrong secret",
			call: func(e *env) error {
				k := e.role
				k.Secret = "not-the-secret"
				return send(alimns.NewMNSQueue("dlq", e.clientFor(k)), "m", 8, 0)
			},
			template: alimns.ERR_MNS_SIGNATURE_DOES_NOT_MATCH, code: mns.CodeSignatureDoesNotMatch, status: 403,
		},
		{
			name: "expired STS token",
			call: func(e *env) error {
				if err := e.keys.SetExpiry(e.role.ID, e.clock.Now().Add(-time.Second)); err != nil {
					return err
				}
				return send(e.queue("dlq"), "m", 8, 0)
			},
			template: alimns.ERR_MNS_ACCESS_DENIED, code: mns.CodeAccessDenied, status: 403,
		},
		{
			name: "STS key without its token",
			call: func(e *env) error {
				k := e.role
				k.Token = ""
				return send(alimns.NewMNSQueue("dlq", e.clientFor(k)), "m", 8, 0)
			},
			template: alimns.ERR_MNS_ACCESS_DENIED, code: mns.CodeAccessDenied, status: 403,
		},
		{
			name: "STS key with another token",
			call: func(e *env) error {
				k := e.role
				k.Token = "CAISforged"
				return send(alimns.NewMNSQueue("dlq", e.clientFor(k)), "m", 8, 0)
			},
			template: alimns.ERR_MNS_ACCESS_DENIED, code: mns.CodeAccessDenied, status: 403,
		},
		{
			name: "stale Date",
			call: func(e *env) error {
				e.clock.Advance(20 * time.Minute) // the server is 20 minutes ahead of the client
				return send(e.queue("dlq"), "m", 8, 0)
			},
			template: alimns.ERR_MNS_TIME_EXPIRED, code: mns.CodeTimeExpired, status: 408,
		},
		{
			name: "body damaged in transit (Content-MD5)",
			call: func(e *env) error {
				k := e.role
				cl := e.client(clientSpec{endpoint: e.srv.Endpoint(), id: k.ID, secret: k.Secret, token: k.Token,
					transport: corruptingTransport(e.addr)})
				return send(alimns.NewMNSQueue("dlq", cl), "m", 8, 0)
			},
			// MNS spells the code InvalidDegist, as does the SDK's template.
			template: alimns.ERR_MNS_INVALID_DEGIST, code: mns.CodeInvalidDigest, status: 400,
		},
		{
			name: "another account in Host",
			call: func(e *env) error {
				k := e.role
				cl := e.client(clientSpec{endpoint: "http://9999999999999999.mns.cn-hangzhou.aliyuncs.com", id: k.ID, secret: k.Secret, token: k.Token})
				return send(alimns.NewMNSQueue("dlq", cl), "m", 8, 0)
			},
			template: alimns.ERR_MNS_ACCESS_DENIED, code: mns.CodeAccessDenied, status: 403,
		},
		{
			name:     "Priority 0 (the SDK's default)",
			call:     func(e *env) error { return send(e.queue("dlq"), "m", 0, 0) },
			template: alimns.ERR_MNS_INVALID_ARGUMENT, code: mns.CodeInvalidArgument, status: 400,
		},
		{
			name:     "Priority 17",
			call:     func(e *env) error { return send(e.queue("dlq"), "m", 17, 0) },
			template: alimns.ERR_MNS_INVALID_ARGUMENT, code: mns.CodeInvalidArgument, status: 400,
		},
		{
			name:     "DelaySeconds over 7 days",
			call:     func(e *env) error { return send(e.queue("dlq"), "m", 8, 604801) },
			template: alimns.ERR_MNS_INVALID_ARGUMENT, code: mns.CodeInvalidArgument, status: 400,
		},
		{
			name:     "DelaySeconds negative",
			call:     func(e *env) error { return send(e.queue("dlq"), "m", 8, -1) },
			template: alimns.ERR_MNS_INVALID_ARGUMENT, code: mns.CodeInvalidArgument, status: 400,
		},
		{
			name:     "body over 64 KiB",
			call:     func(e *env) error { return send(e.queue("dlq"), strings.Repeat("x", 65537), 8, 0) },
			template: alimns.ERR_MNS_INVALID_ARGUMENT, code: mns.CodeInvalidArgument, status: 400,
		},
		{
			name:     "unknown queue",
			call:     func(e *env) error { return send(e.queue("nope"), "m", 8, 0) },
			template: alimns.ERR_MNS_QUEUE_NOT_EXIST, code: mns.CodeQueueNotExist, status: 404,
		},
		{
			name: "stale receipt handle",
			call: func(e *env) error {
				q := e.queue("dlq")
				if err := send(q, "m", 8, 0); err != nil {
					return err
				}
				m, err := receive(q, 0)
				if err != nil {
					return err
				}
				if err := q.DeleteMessage(m.ReceiptHandle); err != nil {
					return err
				}
				return q.DeleteMessage(m.ReceiptHandle)
			},
			template: alimns.ERR_MNS_MESSAGE_NOT_EXIST, code: mns.CodeMessageNotExist, status: 404, action: "DeleteMessage",
		},
		{
			name:     "unreadable receipt handle",
			call:     func(e *env) error { return e.queue("dlq").DeleteMessage("not-a-handle") },
			template: alimns.ERR_MNS_RECEIPT_HANDLE_ERROR, code: mns.CodeReceiptHandleError, status: 400, action: "DeleteMessage",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			e.mustCreate("dlq", mns.QueueConfig{})
			err := tt.call(e)
			if !tt.template.IsEqual(err) || !hasCode(err, tt.code) {
				t.Fatalf("err = %v, want code %s", err, tt.code)
			}
			action := tt.action
			if action == "" {
				action = "SendMessage"
			}
			c := e.lastCall(action)
			if c.Code != tt.code || c.HTTPStatus != tt.status {
				t.Errorf("recorded code %q status %d, want %q %d", c.Code, c.HTTPStatus, tt.code, tt.status)
			}
			if n := len(e.srv.Messages("dlq")); n != 0 && action == "SendMessage" {
				t.Errorf("a refused send left %d messages", n)
			}
		})
	}
}

func TestOutageWindow(t *testing.T) {
	e := newEnv(t)
	e.mustCreate("dlq", mns.QueueConfig{})
	q := e.queue("dlq")

	e.faults.StartOutage("mns", time.Hour)
	for i := range 3 {
		_, err := q.SendMessage(alimns.MessageSendRequest{MessageBody: fmt.Sprint("during ", i), Priority: 8})
		if !hasCode(err, mns.CodeServiceUnavailable) {
			t.Fatalf("send during the outage: %v, want ServiceUnavailable", err)
		}
		if c := e.lastCall("SendMessage"); c.HTTPStatus != http.StatusServiceUnavailable || c.Fault != "outage" || c.Code != mns.CodeServiceUnavailable {
			t.Errorf("recorded %+v", c)
		}
	}
	if err := e.srv.Queue("dlq").Deliver(context.Background(), []byte("destination")); !errors.Is(err, mns.ErrServiceUnavailable) {
		t.Fatalf("Deliver during the outage: %v, want ErrServiceUnavailable", err)
	}
	if n := len(e.srv.Messages("dlq")); n != 0 {
		t.Fatalf("%d messages got through the outage", n)
	}

	e.faults.EndOutages("mns")
	if _, err := q.SendMessage(alimns.MessageSendRequest{MessageBody: "after", Priority: 8}); err != nil {
		t.Fatalf("send after the outage: %v", err)
	}
	if msgs := e.srv.Messages("dlq"); len(msgs) != 1 || string(msgs[0].Body) != "after" {
		t.Fatalf("queue holds %+v, want only the message sent after the outage", msgs)
	}
}

func TestOutageFromPlan(t *testing.T) {
	e := newEnv(t)
	e.mustCreate("dlq", mns.QueueConfig{})
	e.faults.SetPlan(fault.Plan{Outages: []fault.Outage{{Service: "mns", Start: 0, End: fault.Duration(time.Hour)}}})
	_, err := e.queue("dlq").SendMessage(alimns.MessageSendRequest{MessageBody: "m", Priority: 8})
	if !hasCode(err, mns.CodeServiceUnavailable) {
		t.Fatalf("send inside a planned outage: %v", err)
	}
}

func TestInjectedFaults(t *testing.T) {
	tests := []struct {
		name     string
		rule     fault.Rule
		check    func(error) bool
		code     string
		status   int
		fault    string
		recorded bool
	}{
		{
			name:  "QpsLimitExceeded with the table's status",
			rule:  fault.Rule{Service: "mns", Action: "SendMessage", Rate: 1, Code: mns.CodeQPSLimitExceeded},
			check: alimns.ERR_MNS_QPS_LIMIT_EXCEEDED.IsEqual,
			code:  mns.CodeQPSLimitExceeded, status: 400, fault: "error",
		},
		{
			name: "InternalError with an explicit status",
			rule: fault.Rule{Service: "mns", Action: "SendMessage", Rate: 1, Code: mns.CodeInternalError, HTTPStatus: 502, Message: "upstream broke"},
			check: func(err error) bool {
				return alimns.ERR_MNS_INTERNAL_ERROR.IsEqual(err) && strings.Contains(err.Error(), "upstream broke")
			},
			code: mns.CodeInternalError, status: 502, fault: "error",
		},
		{
			name:  "reset drops the connection",
			rule:  fault.Rule{Service: "mns", Action: "SendMessage", Rate: 1, Reset: true},
			check: alimns.ERR_SEND_REQUEST_FAILED.IsEqual,
			fault: "reset",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			e.mustCreate("dlq", mns.QueueConfig{})
			e.faults.SetPlan(fault.Plan{Seed: 7, Errors: []fault.Rule{tt.rule}})
			q := e.queue("dlq")
			_, err := q.SendMessage(alimns.MessageSendRequest{MessageBody: "m", Priority: 8})
			if !tt.check(err) {
				t.Fatalf("err = %v", err)
			}
			c := e.lastCall("SendMessage")
			if c.Fault != tt.fault || c.Code != tt.code || c.HTTPStatus != tt.status {
				t.Errorf("recorded fault %q code %q status %d, want %q %q %d", c.Fault, c.Code, c.HTTPStatus, tt.fault, tt.code, tt.status)
			}
			if n := len(e.srv.Messages("dlq")); n != 0 {
				t.Fatalf("a failed send left %d messages", n)
			}
			// Other actions are untouched, and the send works once the plan is lifted.
			if _, err := receive(q, 0); !alimns.ERR_MNS_MESSAGE_NOT_EXIST.IsEqual(err) {
				t.Errorf("receive under a SendMessage rule: %v", err)
			}
			e.faults.SetPlan(fault.Plan{})
			if _, err := q.SendMessage(alimns.MessageSendRequest{MessageBody: "m", Priority: 8}); err != nil {
				t.Fatalf("send after lifting the rule: %v", err)
			}
		})
	}
}

func TestInjectedDelayHonoursTheClient(t *testing.T) {
	e := newEnv(t)
	e.mustCreate("dlq", mns.QueueConfig{})
	e.faults.SetPlan(fault.Plan{Latency: []fault.Latency{{Service: "mns", Action: "SendMessage", Base: fault.Duration(time.Hour)}}})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.srv.Deliver(ctx, "dlq", []byte("slow")) }()
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Deliver under an hour of latency, cancelled: %v", err)
	}
	if c := e.lastCall("SendMessage"); c.Fault != "delay" || c.HTTPStatus != 499 {
		t.Errorf("recorded %+v", c)
	}
}

// denyQueue returns an authorizer that refuses every action on one queue, and a function
// listing the questions it was asked.
func denyQueue(queue string) (mns.Authorizer, func() []string) {
	var (
		mu    sync.Mutex
		asked []string
	)
	deny := mns.AuthorizerFunc(func(p auth.Principal, action, resource string) error {
		mu.Lock()
		defer mu.Unlock()
		asked = append(asked, p.Name+" "+action+" "+resource)
		if strings.Contains(resource, ":/queues/"+queue+"/") || strings.HasSuffix(resource, ":/queues/"+queue) {
			return fmt.Errorf("no policy allows %s on %s", action, resource)
		}
		return nil
	})
	return deny, func() []string {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(asked)
	}
}

func TestAuthorizerDenies(t *testing.T) {
	deny, asked := denyQueue("secret")
	e := newEnv(t, withAuthorizer(deny))
	e.mustCreate("secret", mns.QueueConfig{})
	e.mustCreate("dlq", mns.QueueConfig{})

	_, err := e.queue("secret").SendMessage(alimns.MessageSendRequest{MessageBody: "m", Priority: 8})
	if !alimns.ERR_MNS_ACCESS_DENIED.IsEqual(err) {
		t.Fatalf("send to a denied queue: %v, want AccessDenied", err)
	}
	if c := e.lastCall("SendMessage"); c.Code != mns.CodeAccessDenied || c.HTTPStatus != 403 || c.Principal != "enipool-fn" {
		t.Errorf("recorded %+v", c)
	}
	if n := len(e.srv.Messages("secret")); n != 0 {
		t.Fatalf("a denied send left %d messages", n)
	}
	if _, err := e.queue("dlq").SendMessage(alimns.MessageSendRequest{MessageBody: "m", Priority: 8}); err != nil {
		t.Fatalf("send to an allowed queue: %v", err)
	}
	want := []string{
		"enipool-fn mns:SendMessage acs:mns:cn-hangzhou:" + account + ":/queues/secret/messages",
		"enipool-fn mns:SendMessage acs:mns:cn-hangzhou:" + account + ":/queues/dlq/messages",
	}
	if strings.Join(asked(), "\n") != strings.Join(want, "\n") {
		t.Errorf("authorizer was asked\n%s\nwant\n%s", strings.Join(asked(), "\n"), strings.Join(want, "\n"))
	}
}

func TestDeliver(t *testing.T) {
	e := newEnv(t)
	e.mustCreate("dlq", mns.QueueConfig{})
	dest := e.srv.Queue("dlq")
	body := []byte(`{"version":1,"event":{"instanceId":"i-1"}}`)
	if err := dest.Deliver(context.Background(), body); err != nil {
		t.Fatal(err)
	}
	// The function's consumer reads it back through the SDK like any other message.
	got, err := receive(e.queue("dlq"), 0)
	if err != nil || got.MessageBody != string(body) || got.Priority != 8 {
		t.Fatalf("received %+v, %v", got, err)
	}
	c := e.lastCall("SendMessage")
	if c.Params["via"] != "destination" || c.Principal != "fc.aliyuncs.com" || c.HTTPStatus != 201 || c.Params["messageId"] != got.MessageId {
		t.Errorf("recorded %+v", c)
	}
	if err := e.srv.Queue("missing").Deliver(context.Background(), body); !errors.Is(err, mns.ErrQueueNotExist) {
		t.Errorf("Deliver to a missing queue: %v, want ErrQueueNotExist", err)
	}
	if err := dest.Deliver(context.Background(), make([]byte, 65537)); !errors.Is(err, &mns.Error{Code: mns.CodeInvalidArgument}) {
		t.Errorf("Deliver of 64 KiB + 1: %v, want InvalidArgument", err)
	}
}

func TestGoAPIReceiveAndDrain(t *testing.T) {
	e := newEnv(t)
	e.mustCreate("dlq", mns.QueueConfig{})
	ctx := context.Background()
	for _, b := range []string{"one", "two", "three"} {
		if err := e.srv.Deliver(ctx, "dlq", []byte(b)); err != nil {
			t.Fatal(err)
		}
	}
	m, err := e.srv.Receive(ctx, "dlq", 0)
	if err != nil || string(m.Body) != "one" || m.State != mns.StateInactive || m.ReceiptHandle == "" {
		t.Fatalf("Receive = %+v, %v", m, err)
	}
	if err := e.srv.Delete("dlq", m.ReceiptHandle); err != nil {
		t.Fatal(err)
	}
	if err := e.srv.Delete("dlq", m.ReceiptHandle); !errors.Is(err, mns.ErrMessageNotExist) {
		t.Fatalf("second Delete: %v", err)
	}
	drained := e.srv.Drain("dlq")
	if len(drained) != 2 || string(drained[0].Body) != "two" || string(drained[1].Body) != "three" {
		t.Fatalf("Drain = %+v", drained)
	}
	if _, err := e.srv.Receive(ctx, "dlq", 0); !errors.Is(err, mns.ErrMessageNotExist) {
		t.Fatalf("Receive from a drained queue: %v", err)
	}
	if e.srv.Messages("missing") != nil || e.srv.HasQueue("missing") {
		t.Error("a missing queue reported messages")
	}
}

// TestGoAPISetQueueAttributes: the Go API changes only the attributes it is given, refuses
// what the SetQueueAttributes API refuses, and a message received afterwards stays in flight
// for the new visibility timeout.
func TestGoAPISetQueueAttributes(t *testing.T) {
	for _, tc := range []struct {
		name       string
		queue      string
		set        mns.QueueConfig
		err        error // errors.Is; nil: succeeds
		visibility int64 // after the call
		retention  int64
	}{
		{name: "visibility only", queue: "work", set: mns.QueueConfig{VisibilityTimeout: 600 * time.Second}, visibility: 600, retention: 345600},
		{name: "highest visibility", queue: "work", set: mns.QueueConfig{VisibilityTimeout: 12 * time.Hour}, visibility: 43200, retention: 345600},
		{name: "retention only", queue: "work", set: mns.QueueConfig{Retention: time.Hour}, visibility: 30, retention: 3600},
		{name: "beyond 12 h", queue: "work", set: mns.QueueConfig{VisibilityTimeout: 12*time.Hour + time.Second}, err: &mns.Error{Code: mns.CodeInvalidArgument}, visibility: 30, retention: 345600},
		{name: "not whole seconds", queue: "work", set: mns.QueueConfig{VisibilityTimeout: 1500 * time.Millisecond}, err: &mns.Error{Code: mns.CodeInvalidArgument}, visibility: 30, retention: 345600},
		{name: "missing queue", queue: "nope", set: mns.QueueConfig{VisibilityTimeout: time.Minute}, err: mns.ErrQueueNotExist, visibility: 30, retention: 345600},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			e.mustCreate("work", mns.QueueConfig{})
			err := e.srv.SetQueueAttributes(tc.queue, tc.set)
			if (tc.err == nil) != (err == nil) || (tc.err != nil && !errors.Is(err, tc.err)) {
				t.Fatalf("SetQueueAttributes = %v, want %v", err, tc.err)
			}
			attrs, err := alimns.NewMNSQueueManager(e.clientFor(e.root)).GetQueueAttributes("work")
			if err != nil {
				t.Fatal(err)
			}
			if int64(attrs.VisibilityTimeout) != tc.visibility || int64(attrs.MessageRetentionPeriod) != tc.retention {
				t.Errorf("VisibilityTimeout %d, MessageRetentionPeriod %d; want %d, %d", attrs.VisibilityTimeout, attrs.MessageRetentionPeriod, tc.visibility, tc.retention)
			}
			ctx := context.Background()
			if err := e.srv.Deliver(ctx, "work", []byte("m")); err != nil {
				t.Fatal(err)
			}
			if _, err := e.srv.Receive(ctx, "work", 0); err != nil {
				t.Fatal(err)
			}
			e.clock.Advance(time.Duration(tc.visibility)*time.Second - time.Second)
			if _, err := e.srv.Receive(ctx, "work", 0); !errors.Is(err, mns.ErrMessageNotExist) {
				t.Fatalf("receive a second before the visibility timeout: %v, want MessageNotExist", err)
			}
			e.clock.Advance(time.Second)
			if _, err := e.srv.Receive(ctx, "work", 0); err != nil {
				t.Fatalf("receive at the visibility timeout: %v", err)
			}
		})
	}
}
