package auth

import (
	"crypto/hmac"
	"crypto/sha1"
	"encoding/base64"
	"net/http"
	"net/url"
	"sort"
	"strings"
)

// percentEncode is the RFC 3986 encoding the RPC signature uses: url.QueryEscape with "+"
// written as %20, "*" as %2A and "~" kept.
func percentEncode(s string) string {
	e := url.QueryEscape(s)
	e = strings.ReplaceAll(e, "+", "%20")
	e = strings.ReplaceAll(e, "*", "%2A")
	e = strings.ReplaceAll(e, "%7E", "~")
	return e
}

// RPCStringToSign returns the string-to-sign of an RPC-style (ECS, ESS) request, signature
// version 1.0: METHOD&%2F&pe(canonicalized query), where the canonicalized query is every
// parameter except Signature, sorted by name, each "pe(name)=pe(value)", joined by "&".
// Parameters with several values contribute each value.
func RPCStringToSign(method string, params url.Values) string {
	names := make([]string, 0, len(params))
	for k := range params {
		if k != "Signature" {
			names = append(names, k)
		}
	}
	sort.Strings(names)
	var b strings.Builder
	for _, k := range names {
		for _, v := range params[k] {
			if b.Len() > 0 {
				b.WriteByte('&')
			}
			b.WriteString(percentEncode(k))
			b.WriteByte('=')
			b.WriteString(percentEncode(v))
		}
	}
	return strings.ToUpper(method) + "&" + percentEncode("/") + "&" + percentEncode(b.String())
}

// SignRPC returns the base64 HMAC-SHA1 of stringToSign keyed with secret+"&".
func SignRPC(secret, stringToSign string) string {
	return hmacSHA1(secret+"&", stringToSign)
}

// MNSStringToSign returns the string-to-sign of an MNS request:
//
//	METHOD \n Content-MD5 \n Content-Type \n Date \n CanonicalizedMNSHeaders CanonicalizedResource
//
// where CanonicalizedMNSHeaders are the x-mns-* headers, lower-cased, sorted, "name:value\n"
// each, and the resource is the request path with its query. The security-token header is
// not part of it.
func MNSStringToSign(method string, h http.Header, resource string) string {
	var mns []string
	for name, vs := range h {
		ln := strings.ToLower(name)
		if strings.HasPrefix(ln, "x-mns-") && len(vs) > 0 {
			mns = append(mns, ln+":"+strings.TrimSpace(vs[0]))
		}
	}
	sort.Strings(mns)
	var b strings.Builder
	b.WriteString(strings.ToUpper(method))
	b.WriteByte('\n')
	b.WriteString(h.Get("Content-MD5"))
	b.WriteByte('\n')
	b.WriteString(h.Get("Content-Type"))
	b.WriteByte('\n')
	b.WriteString(h.Get("Date"))
	b.WriteByte('\n')
	for _, line := range mns {
		b.WriteString(line)
		b.WriteByte('\n')
	}
	if !strings.HasPrefix(resource, "/") {
		b.WriteByte('/')
	}
	b.WriteString(resource)
	return b.String()
}

// SignMNS returns the base64 HMAC-SHA1 of stringToSign keyed with the raw secret.
func SignMNS(secret, stringToSign string) string {
	return hmacSHA1(secret, stringToSign)
}

// Equal compares two signatures in constant time.
func Equal(a, b string) bool {
	return hmac.Equal([]byte(a), []byte(b))
}

func hmacSHA1(key, msg string) string {
	m := hmac.New(sha1.New, []byte(key))
	m.Write([]byte(msg))
	return base64.StdEncoding.EncodeToString(m.Sum(nil))
}
