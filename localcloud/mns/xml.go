package mns

import (
	"bytes"
	"encoding/xml"
	"errors"
	"io"
)

// Request documents. Their names match any namespace: the Go SDK sends none, the docs and
// other SDKs send xmlns; MNS accepts both. Numbers are read as text so that a non-number
// answers InvalidArgument rather than MalformedXML.

type sendMessageXML struct {
	XMLName      xml.Name `xml:"Message"`
	MessageBody  *string  `xml:"MessageBody"`
	DelaySeconds *string  `xml:"DelaySeconds"`
	Priority     *string  `xml:"Priority"`
}

type batchSendXML struct {
	XMLName  xml.Name         `xml:"Messages"`
	Messages []sendMessageXML `xml:"Message"`
}

type receiptHandlesXML struct {
	XMLName xml.Name `xml:"ReceiptHandles"`
	Handles []string `xml:"ReceiptHandle"`
}

type queueConfigXML struct {
	XMLName                xml.Name `xml:"Queue"`
	DelaySeconds           *string  `xml:"DelaySeconds"`
	MaximumMessageSize     *string  `xml:"MaximumMessageSize"`
	MessageRetentionPeriod *string  `xml:"MessageRetentionPeriod"`
	VisibilityTimeout      *string  `xml:"VisibilityTimeout"`
	PollingWaitSeconds     *string  `xml:"PollingWaitSeconds"`
	LoggingEnabled         *string  `xml:"LoggingEnabled"`
}

// Response documents, all in the MNS namespace http://mns.aliyuncs.com/doc/v1/.

type errorXML struct {
	XMLName   xml.Name `xml:"http://mns.aliyuncs.com/doc/v1/ Error"`
	Code      string   `xml:"Code"`
	Message   string   `xml:"Message"`
	RequestID string   `xml:"RequestId"`
	HostID    string   `xml:"HostId"`
}

type sendResultXML struct {
	XMLName        xml.Name `xml:"http://mns.aliyuncs.com/doc/v1/ Message"`
	MessageID      string   `xml:"MessageId"`
	MessageBodyMD5 string   `xml:"MessageBodyMD5"`
	// ReceiptHandle is returned for delayed messages only.
	ReceiptHandle string `xml:"ReceiptHandle,omitempty"`
}

type batchSendEntryXML struct {
	ErrorCode      string `xml:"ErrorCode,omitempty"`
	ErrorMessage   string `xml:"ErrorMessage,omitempty"`
	MessageID      string `xml:"MessageId,omitempty"`
	MessageBodyMD5 string `xml:"MessageBodyMD5,omitempty"`
	ReceiptHandle  string `xml:"ReceiptHandle,omitempty"`
}

type batchSendResultXML struct {
	XMLName  xml.Name            `xml:"http://mns.aliyuncs.com/doc/v1/ Messages"`
	Messages []batchSendEntryXML `xml:"Message"`
}

// messageXML is a received or peeked message. Peeked messages carry no receipt handle and
// no next visible time.
type messageXML struct {
	XMLName          xml.Name `xml:"http://mns.aliyuncs.com/doc/v1/ Message"`
	MessageID        string   `xml:"MessageId"`
	ReceiptHandle    string   `xml:"ReceiptHandle,omitempty"`
	MessageBodyMD5   string   `xml:"MessageBodyMD5"`
	MessageBody      string   `xml:"MessageBody"`
	EnqueueTime      int64    `xml:"EnqueueTime"`
	NextVisibleTime  int64    `xml:"NextVisibleTime,omitempty"`
	FirstDequeueTime int64    `xml:"FirstDequeueTime"`
	DequeueCount     int      `xml:"DequeueCount"`
	Priority         int      `xml:"Priority"`
}

type messagesXML struct {
	XMLName  xml.Name     `xml:"http://mns.aliyuncs.com/doc/v1/ Messages"`
	Messages []messageXML `xml:"Message"`
}

type deleteErrorXML struct {
	ErrorCode     string `xml:"ErrorCode"`
	ErrorMessage  string `xml:"ErrorMessage"`
	ReceiptHandle string `xml:"ReceiptHandle"`
}

type deleteErrorsXML struct {
	XMLName xml.Name         `xml:"http://mns.aliyuncs.com/doc/v1/ Errors"`
	Errors  []deleteErrorXML `xml:"Error"`
}

type changeVisibilityXML struct {
	XMLName         xml.Name `xml:"http://mns.aliyuncs.com/doc/v1/ ChangeVisibility"`
	ReceiptHandle   string   `xml:"ReceiptHandle"`
	NextVisibleTime int64    `xml:"NextVisibleTime"`
}

type queueAttrsXML struct {
	XMLName                xml.Name `xml:"http://mns.aliyuncs.com/doc/v1/ Queue"`
	QueueName              string   `xml:"QueueName"`
	CreateTime             int64    `xml:"CreateTime"`
	LastModifyTime         int64    `xml:"LastModifyTime"`
	DelaySeconds           int64    `xml:"DelaySeconds"`
	MaximumMessageSize     int64    `xml:"MaximumMessageSize"`
	MessageRetentionPeriod int64    `xml:"MessageRetentionPeriod"`
	VisibilityTimeout      int64    `xml:"VisibilityTimeout"`
	PollingWaitSeconds     int64    `xml:"PollingWaitSeconds"`
	ActiveMessages         int64    `xml:"ActiveMessages"`
	InactiveMessages       int64    `xml:"InactiveMessages"`
	DelayMessages          int64    `xml:"DelayMessages"`
	LoggingEnabled         string   `xml:"LoggingEnabled"`
}

// listQueueEntryXML is one queue of ListQueue; the attributes appear only with
// x-mns-with-meta: true.
type listQueueEntryXML struct {
	QueueURL               string `xml:"QueueURL"`
	QueueName              string `xml:"QueueName,omitempty"`
	CreateTime             int64  `xml:"CreateTime,omitempty"`
	LastModifyTime         int64  `xml:"LastModifyTime,omitempty"`
	DelaySeconds           *int64 `xml:"DelaySeconds,omitempty"`
	MaximumMessageSize     int64  `xml:"MaximumMessageSize,omitempty"`
	MessageRetentionPeriod int64  `xml:"MessageRetentionPeriod,omitempty"`
	VisibilityTimeout      int64  `xml:"VisibilityTimeout,omitempty"`
	PollingWaitSeconds     *int64 `xml:"PollingWaitSeconds,omitempty"`
	ActiveMessages         *int64 `xml:"ActiveMessages,omitempty"`
	InactiveMessages       *int64 `xml:"InactiveMessages,omitempty"`
	DelayMessages          *int64 `xml:"DelayMessages,omitempty"`
	LoggingEnabled         string `xml:"LoggingEnabled,omitempty"`
}

type listQueueXML struct {
	XMLName    xml.Name            `xml:"http://mns.aliyuncs.com/doc/v1/ Queues"`
	Queues     []listQueueEntryXML `xml:"Queue"`
	NextMarker string              `xml:"NextMarker,omitempty"`
}

// rootElement returns the local name of the first element of doc, or a MalformedXML error.
func rootElement(doc []byte) (string, *Error) {
	d := xml.NewDecoder(bytes.NewReader(doc))
	for {
		tok, err := d.Token()
		if err != nil {
			if errors.Is(err, io.EOF) {
				return "", newError(CodeMalformedXML, "")
			}
			return "", errorf(CodeMalformedXML, "The XML you provided was not well-formed: %v.", err)
		}
		if se, ok := tok.(xml.StartElement); ok {
			return se.Name.Local, nil
		}
	}
}

// decodeXML reads doc into v, answering MalformedXML for syntax errors and InvalidArgument
// for well-formed documents of the wrong shape.
func decodeXML(doc []byte, v any) *Error {
	err := xml.Unmarshal(doc, v)
	if err == nil {
		return nil
	}
	var syn *xml.SyntaxError
	if errors.As(err, &syn) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return errorf(CodeMalformedXML, "The XML you provided was not well-formed: %v.", err)
	}
	return errorf(CodeInvalidArgument, "The XML you provided did not validate against our published schema: %v.", err)
}

// marshalXML renders v with the XML declaration MNS puts in front of every document.
func marshalXML(v any) ([]byte, error) {
	b, err := xml.Marshal(v)
	if err != nil {
		return nil, err
	}
	return append([]byte(xml.Header[:len(xml.Header)-1]), b...), nil
}
