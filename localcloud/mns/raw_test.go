package mns_test

import (
	"bytes"
	"crypto/hmac"
	"crypto/md5"
	"crypto/sha1"
	"encoding/base64"
	"encoding/hex"
	"encoding/xml"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/enipool/enipool/localcloud/mns"
)

// rawRequest is an MNS request built and signed by hand from the documented recipe,
// independently of the SDK and of localcloud/auth, to prove that any correct client works.
type rawRequest struct {
	method, uri, body string
	host              string // default: the account's endpoint host
	contentType       string // default: text/xml;charset=utf-8
	date              string // default: now; "-" omits the header
	xmnsDate          bool   // send the date as x-mns-date instead of Date
	version           string // default: 2015-06-06; "-" omits the header
	authorization     string // overrides the computed header; "-" omits it
	contentMD5        string // overrides the computed header
	token             string
}

func (e *env) do(t *testing.T, k rawRequest, secret, akID string) *http.Response {
	t.Helper()
	if k.host == "" {
		k.host = account + ".mns." + region + ".aliyuncs.com"
	}
	if k.contentType == "" {
		k.contentType = "text/xml;charset=utf-8"
	}
	if k.date == "" {
		k.date = time.Now().UTC().Format(http.TimeFormat)
	}
	if k.version == "" {
		k.version = mns.APIVersion
	}
	req, err := http.NewRequest(k.method, "http://"+e.addr+k.uri, strings.NewReader(k.body))
	if err != nil {
		t.Fatal(err)
	}
	req.Host = k.host
	h := req.Header
	h.Set("Content-Type", k.contentType)
	if k.version != "-" {
		h.Set("x-mns-version", k.version)
	}
	if k.date != "-" {
		if k.xmnsDate {
			h.Set("x-mns-date", k.date)
		} else {
			h.Set("Date", k.date)
		}
	}
	if k.body != "" {
		sum := md5.Sum([]byte(k.body))
		h.Set("Content-MD5", base64.StdEncoding.EncodeToString([]byte(hex.EncodeToString(sum[:]))))
	}
	if k.contentMD5 != "" {
		h.Set("Content-MD5", k.contentMD5)
	}
	if k.token != "" {
		h.Set("security-token", k.token)
	}
	// String to sign: METHOD, Content-MD5, Content-Type, Date (or x-mns-date), the sorted
	// lower-case x-mns-* headers, then the resource with its query.
	var mnsHeaders []string
	for name, vs := range h {
		if ln := strings.ToLower(name); strings.HasPrefix(ln, "x-mns-") {
			mnsHeaders = append(mnsHeaders, ln+":"+strings.TrimSpace(vs[0]))
		}
	}
	sort.Strings(mnsHeaders)
	date := h.Get("Date")
	if k.xmnsDate {
		date = h.Get("x-mns-date")
	}
	sts := k.method + "\n" + h.Get("Content-MD5") + "\n" + k.contentType + "\n" + date + "\n" +
		strings.Join(mnsHeaders, "\n") + "\n" + k.uri
	mac := hmac.New(sha1.New, []byte(secret))
	mac.Write([]byte(sts))
	switch k.authorization {
	case "":
		h.Set("Authorization", "MNS "+akID+":"+base64.StdEncoding.EncodeToString(mac.Sum(nil)))
	case "-":
	default:
		h.Set("Authorization", k.authorization)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

type rawError struct {
	XMLName   xml.Name `xml:"http://mns.aliyuncs.com/doc/v1/ Error"`
	Code      string   `xml:"Code"`
	Message   string   `xml:"Message"`
	RequestID string   `xml:"RequestId"`
	HostID    string   `xml:"HostId"`
}

func TestHandSignedRequests(t *testing.T) {
	e := newEnv(t)
	e.mustCreate("dlq", mns.QueueConfig{})
	const msgBody = "aGVsbG8gd29ybGQ=" // base64, as the docs advise
	sendDoc := `<?xml version="1.0" encoding="UTF-8"?><Message xmlns="http://mns.aliyuncs.com/doc/v1/"><MessageBody>` +
		msgBody + `</MessageBody><DelaySeconds>0</DelaySeconds><Priority>1</Priority></Message>`

	resp := e.do(t, rawRequest{method: "POST", uri: "/queues/dlq/messages", body: sendDoc}, e.root.Secret, e.root.ID)
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("send answered %d: %s", resp.StatusCode, b)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "text/xml;charset=utf-8" {
		t.Errorf("Content-Type %q", ct)
	}
	if resp.Header.Get("x-mns-request-id") == "" || resp.Header.Get("x-mns-version") != mns.APIVersion {
		t.Errorf("headers %v", resp.Header)
	}
	var sent struct {
		XMLName        xml.Name `xml:"http://mns.aliyuncs.com/doc/v1/ Message"`
		MessageID      string   `xml:"MessageId"`
		MessageBodyMD5 string   `xml:"MessageBodyMD5"`
	}
	if err := xml.Unmarshal(b, &sent); err != nil {
		t.Fatalf("send answer %s: %v", b, err)
	}
	if !bytes.HasPrefix(b, []byte(`<?xml version="1.0" encoding="UTF-8"?>`)) || sent.MessageBodyMD5 != upperMD5(msgBody) || sent.MessageID == "" {
		t.Errorf("send answer %s", b)
	}
	if c := e.lastCall("SendMessage"); c.Principal != "root" || c.Params["priority"] != "1" {
		t.Errorf("recorded %+v", c)
	}

	// Receive, signed with x-mns-date instead of Date, then delete by the escaped handle.
	resp = e.do(t, rawRequest{method: "GET", uri: "/queues/dlq/messages?waitseconds=1", xmnsDate: true}, e.root.Secret, e.root.ID)
	b, _ = io.ReadAll(resp.Body)
	var got struct {
		XMLName       xml.Name `xml:"http://mns.aliyuncs.com/doc/v1/ Message"`
		MessageID     string   `xml:"MessageId"`
		ReceiptHandle string   `xml:"ReceiptHandle"`
		MessageBody   string   `xml:"MessageBody"`
		DequeueCount  int      `xml:"DequeueCount"`
		Priority      int      `xml:"Priority"`
	}
	if resp.StatusCode != http.StatusOK || xml.Unmarshal(b, &got) != nil || got.MessageID != sent.MessageID ||
		got.MessageBody != msgBody || got.DequeueCount != 1 || got.Priority != 1 {
		t.Fatalf("receive answered %d: %s", resp.StatusCode, b)
	}
	resp = e.do(t, rawRequest{method: "DELETE", uri: "/queues/dlq/messages?ReceiptHandle=" + url.QueryEscape(got.ReceiptHandle)},
		e.root.Secret, e.root.ID)
	if resp.StatusCode != http.StatusNoContent {
		b, _ = io.ReadAll(resp.Body)
		t.Fatalf("delete answered %d: %s", resp.StatusCode, b)
	}

	tests := []struct {
		name   string
		req    rawRequest
		code   string
		status int
	}{
		{"no x-mns-version", rawRequest{method: "GET", uri: "/queues/dlq", version: "-"}, mns.CodeMissingVersionHeader, 400},
		{"old x-mns-version", rawRequest{method: "GET", uri: "/queues/dlq", version: "2014-07-08"}, mns.CodeInvalidVersionHeader, 400},
		{"no Authorization", rawRequest{method: "GET", uri: "/queues/dlq", authorization: "-"}, mns.CodeMissingAuthorization, 400},
		{"Basic Authorization", rawRequest{method: "GET", uri: "/queues/dlq", authorization: "Basic dXNlcjpwYXNz"}, mns.CodeInvalidAuthorizationHeader, 400},
		{"no Date", rawRequest{method: "GET", uri: "/queues/dlq", date: "-"}, mns.CodeMissingDateHeader, 400},
		{"ISO Date", rawRequest{method: "GET", uri: "/queues/dlq", date: "2026-11-28T04:17:47Z"}, mns.CodeInvalidDateHeader, 400},
		{"Date 20 minutes old", rawRequest{method: "GET", uri: "/queues/dlq", date: time.Now().Add(-20 * time.Minute).UTC().Format(http.TimeFormat)}, mns.CodeTimeExpired, 408},
		{"token with a long-term key", rawRequest{method: "GET", uri: "/queues/dlq", token: "CAISsomething"}, mns.CodeAccessDenied, 403},
		{"Content-MD5 of the raw digest (RFC 1864)", rawRequest{method: "POST", uri: "/queues/dlq/messages", body: sendDoc,
			contentMD5: func() string { s := md5.Sum([]byte(sendDoc)); return base64.StdEncoding.EncodeToString(s[:]) }()}, mns.CodeInvalidDigest, 400},
		{"endpoint of another region", rawRequest{method: "GET", uri: "/queues/dlq", host: account + ".mns.cn-beijing.aliyuncs.com"}, mns.CodeInvalidRequestURL, 400},
		{"not an MNS endpoint", rawRequest{method: "GET", uri: "/queues/dlq", host: "127.0.0.1"}, mns.CodeInvalidRequestURL, 400},
		{"malformed XML", rawRequest{method: "POST", uri: "/queues/dlq/messages", body: "<Message><MessageBody>x</Message"}, mns.CodeMalformedXML, 400},
		{"no MessageBody", rawRequest{method: "POST", uri: "/queues/dlq/messages", body: "<Message><Priority>1</Priority></Message>"}, mns.CodeInvalidArgument, 400},
		{"unknown resource", rawRequest{method: "GET", uri: "/topics/t1"}, mns.CodeInvalidRequestURL, 400},
		{"waitseconds over 30", rawRequest{method: "GET", uri: "/queues/dlq/messages?waitseconds=31"}, mns.CodeInvalidArgument, 400},
		{"numOfMessages over 16", rawRequest{method: "GET", uri: "/queues/dlq/messages?numOfMessages=17"}, mns.CodeInvalidArgument, 400},
		{"VisibilityTimeout missing", rawRequest{method: "PUT", uri: "/queues/dlq/messages?ReceiptHandle=x"}, mns.CodeMissingVisibilityTimeout, 400},
		{"bad queue name", rawRequest{method: "PUT", uri: "/queues/1bad", body: "<Queue/>"}, mns.CodeInvalidQueueName, 400},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := e.do(t, tt.req, e.root.Secret, e.root.ID)
			b, _ := io.ReadAll(resp.Body)
			var er rawError
			if err := xml.Unmarshal(b, &er); err != nil {
				t.Fatalf("answer %d is not an MNS <Error>: %s", resp.StatusCode, b)
			}
			if resp.StatusCode != tt.status || er.Code != tt.code || er.Message == "" {
				t.Errorf("answer %d %s, want %d %s", resp.StatusCode, b, tt.status, tt.code)
			}
			if er.RequestID == "" || er.RequestID != resp.Header.Get("x-mns-request-id") || !strings.HasPrefix(er.HostID, "http://") {
				t.Errorf("RequestId %q (header %q), HostId %q", er.RequestID, resp.Header.Get("x-mns-request-id"), er.HostID)
			}
		})
	}
}
