package mns

import (
	"encoding/base64"
	"errors"
	"net"
	"net/http"
	"regexp"
	"strings"
	"time"

	"github.com/enipool/enipool/localcloud/auth"
)

// hostRE matches an MNS endpoint host: {account}.mns.{region}[-internal[-vpc]].aliyuncs.com.
var hostRE = regexp.MustCompile(`^([^.]+)\.mns\.([a-z0-9-]+?)(-internal(-vpc)?)?\.aliyuncs\.com$`)

// authenticate verifies the request the way MNS does: version header, Authorization
// header, Date (or x-mns-date), the key and its STS token, the signature, the 15-minute
// window, Content-MD5 and the account named by the Host header.
func (s *Server) authenticate(r *http.Request, body []byte) (auth.Principal, *Error) {
	switch v := r.Header.Get("x-mns-version"); {
	case v == "":
		return auth.Principal{}, newError(CodeMissingVersionHeader, "")
	case v != APIVersion:
		return auth.Principal{}, errorf(CodeInvalidVersionHeader, "The x-mns-version header %q is invalid; the API version is %s.", v, APIVersion)
	}

	authz := r.Header.Get("Authorization")
	if authz == "" {
		return auth.Principal{}, newError(CodeMissingAuthorization, "")
	}
	cred, ok := strings.CutPrefix(authz, "MNS ")
	akID, sig, ok2 := strings.Cut(cred, ":")
	if !ok || !ok2 || akID == "" || sig == "" {
		return auth.Principal{}, newError(CodeInvalidAuthorizationHeader, "")
	}

	// x-mns-date replaces Date for clients that cannot set Date; it then takes Date's
	// place in the string to sign.
	h := r.Header
	date := r.Header.Get("x-mns-date")
	if date != "" {
		h = r.Header.Clone()
		h.Set("Date", date)
	} else {
		date = r.Header.Get("Date")
	}
	if date == "" {
		return auth.Principal{}, newError(CodeMissingDateHeader, "")
	}
	ts, err := time.Parse(http.TimeFormat, date)
	if err != nil {
		return auth.Principal{}, errorf(CodeInvalidDateHeader, "The Date header format is invalid: %q is not an RFC 1123 GMT date.", date)
	}

	if s.keys == nil {
		return auth.Principal{}, newError(CodeInvalidAccessKeyID, "")
	}
	key, err := s.keys.Resolve(akID, r.Header.Get("security-token"))
	if err != nil {
		return auth.Principal{}, keyError(err)
	}
	sts := auth.MNSStringToSign(r.Method, h, r.URL.RequestURI())
	if !auth.Equal(auth.SignMNS(key.Secret, sts), sig) {
		return auth.Principal{}, newError(CodeSignatureDoesNotMatch, "")
	}
	if err := s.keys.CheckReplay(ts, ""); err != nil {
		return auth.Principal{}, errorf(CodeTimeExpired, "The http request you sent is expired: Date %s is more than 15 minutes from server time.", date)
	}
	if md5h := r.Header.Get("Content-MD5"); md5h != "" && !contentMD5Matches(md5h, body) {
		return auth.Principal{}, newError(CodeInvalidDigest, "")
	}

	host := r.Host
	if hst, _, err := net.SplitHostPort(host); err == nil {
		host = hst
	}
	m := hostRE.FindStringSubmatch(strings.ToLower(host))
	switch {
	case m == nil:
		return auth.Principal{}, errorf(CodeInvalidRequestURL, "Http request URL format invalid: host %q is not an MNS endpoint ({AccountId}.mns.{RegionId}.aliyuncs.com).", r.Host)
	case m[2] != s.region:
		return auth.Principal{}, errorf(CodeInvalidRequestURL, "Http request URL format invalid: this endpoint serves region %s, not %s.", s.region, m[2])
	case m[1] != key.Principal.AccountID || m[1] != s.account:
		return auth.Principal{}, errorf(CodeAccessDenied, "%s The Host header names account %s.", errorTable[CodeAccessDenied].message, m[1])
	}
	return key.Principal, nil
}

// keyError maps the key store's refusals to MNS codes. MNS documents no STS-specific
// codes, so problems with the security token answer AccessDenied (the key exists but may
// not be used this way) and unusable keys answer InvalidAccessKeyId.
func keyError(err error) *Error {
	switch {
	case errors.Is(err, auth.ErrTokenMissing):
		return errorf(CodeAccessDenied, "The security-token header is required for an STS AccessKeyId.")
	case errors.Is(err, auth.ErrTokenInvalid):
		return errorf(CodeAccessDenied, "The security token you provided is invalid.")
	case errors.Is(err, auth.ErrTokenExpired):
		return errorf(CodeAccessDenied, "The security token you provided has expired.")
	case errors.Is(err, auth.ErrTokenUnexpected):
		return errorf(CodeAccessDenied, "A security token was sent with a long-term AccessKeyId.")
	case errors.Is(err, auth.ErrKeyDisabled):
		return errorf(CodeInvalidAccessKeyID, "The AccessKey Id you provided is disabled.")
	default:
		return newError(CodeInvalidAccessKeyID, "")
	}
}

// contentMD5Matches checks the Content-MD5 header the way MNS accepts it from its SDKs:
// base64 of the hex MD5 of the body (not base64 of the raw digest as RFC 1864 has it).
func contentMD5Matches(header string, body []byte) bool {
	dec, err := base64.StdEncoding.DecodeString(header)
	if err != nil {
		return false
	}
	return strings.EqualFold(string(dec), bodyMD5(body))
}
