package rpc

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
)

// jsonBody returns the JSON object of v with "RequestId" as its first member.
func jsonBody(requestID string, v any) ([]byte, error) {
	if v == nil {
		v = struct{}{}
	}
	body, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("rpc: encode response: %w", err)
	}
	if len(body) < 2 || body[0] != '{' {
		return nil, errors.New("rpc: a response must be a JSON object")
	}
	rid, _ := json.Marshal(requestID)
	var b bytes.Buffer
	b.WriteString(`{"RequestId":`)
	b.Write(rid)
	if len(body) > 2 {
		b.WriteByte(',')
		b.Write(body[1:])
	} else {
		b.WriteByte('}')
	}
	return b.Bytes(), nil
}

// toXML renders a JSON object as the RPC APIs render XML: the object becomes the root
// element, each member an element of its name, and a list repeats its member's element
// once per item (so {"Instances":{"Instance":[a,b]}} becomes
// <Instances><Instance>a</Instance><Instance>b</Instance></Instances>). Member order is
// kept.
func toXML(root string, jsonDoc []byte) ([]byte, error) {
	d := json.NewDecoder(bytes.NewReader(jsonDoc))
	d.UseNumber()
	var b bytes.Buffer
	b.WriteString(xml.Header[:len(xml.Header)-1])
	if err := writeXML(&b, d, root); err != nil {
		return nil, fmt.Errorf("rpc: render XML: %w", err)
	}
	return b.Bytes(), nil
}

func writeXML(b *bytes.Buffer, d *json.Decoder, name string) error {
	tok, err := d.Token()
	if err != nil {
		return err
	}
	switch t := tok.(type) {
	case json.Delim:
		switch t {
		case '{':
			fmt.Fprintf(b, "<%s>", name)
			for d.More() {
				k, err := d.Token()
				if err != nil {
					return err
				}
				if err := writeXML(b, d, k.(string)); err != nil {
					return err
				}
			}
			if _, err := d.Token(); err != nil {
				return err
			}
			fmt.Fprintf(b, "</%s>", name)
		case '[':
			for d.More() {
				if err := writeXML(b, d, name); err != nil {
					return err
				}
			}
			if _, err := d.Token(); err != nil {
				return err
			}
		}
	case nil:
		fmt.Fprintf(b, "<%s></%s>", name, name)
	default:
		fmt.Fprintf(b, "<%s>", name)
		if err := xml.EscapeText(b, []byte(fmt.Sprint(t))); err != nil {
			return err
		}
		fmt.Fprintf(b, "</%s>", name)
	}
	return nil
}
