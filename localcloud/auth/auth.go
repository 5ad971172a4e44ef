// Package auth holds the local cloud's identities: accounts, long-term AccessKeys, STS
// credentials issued for roles, and the replay guard (timestamps and nonces). It also has the
// two request-signing recipes the local cloud verifies: ECS/ESS RPC signature v1 and MNS.
//
// The protocols map the sentinel errors here to their own wire error codes, because ECS and
// MNS spell the same failure differently (for example InvalidAccessKeyId.NotFound versus
// InvalidAccessKeyId).
package auth

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"time"
)

// Sentinel errors returned by Store. Match them with errors.Is.
var (
	ErrUnknownKey       = errors.New("access key not found")
	ErrKeyDisabled      = errors.New("access key is disabled")
	ErrAccountNotFound  = errors.New("account does not exist")
	ErrTokenMissing     = errors.New("STS access key used without its security token")
	ErrTokenInvalid     = errors.New("security token does not match the access key")
	ErrTokenExpired     = errors.New("security token has expired")
	ErrTokenUnexpected  = errors.New("security token sent with a long-term access key")
	ErrStaleTimestamp   = errors.New("request timestamp is outside the allowed window")
	ErrNonceReused      = errors.New("signature nonce was already used")
	ErrMissingSignature = errors.New("request is not signed")
)

// Kind is the kind of principal behind a key.
type Kind string

// Principal kinds. The ECS rules treat them differently: some operations refuse RAM users.
const (
	KindAccount Kind = "account"  // the account itself (root AccessKey)
	KindRAMUser Kind = "ram-user" // a RAM user's AccessKey
	KindRole    Kind = "role"     // STS credentials from assuming a RAM role
)

// Principal is the identity a request was signed by.
type Principal struct {
	Name      string `json:"name"`
	Kind      Kind   `json:"kind"`
	AccountID string `json:"accountId"`
}

// Account is an Alibaba Cloud account known to the local cloud.
type Account struct {
	ID string `json:"id"`
	// Type is the account's kind, e.g. "enterprise" or "individual". The ECS emulator refuses
	// some operations for types it does not support (InvalidUserType.NotSupported).
	Type string `json:"type"`
	// Closed accounts exist in the world but every key of theirs is refused
	// (Abs.InvalidAccount.NotFound).
	Closed bool `json:"closed,omitempty"`
}

// Key is an AccessKey pair, long-term or STS.
type Key struct {
	ID        string
	Secret    string
	Token     string // non-empty for STS credentials
	Expires   time.Time
	Disabled  bool
	Principal Principal
}

// IsSTS reports whether k is a temporary STS credential.
func (k Key) IsSTS() bool { return k.Token != "" }

// ReplayWindow is how far a request timestamp may be from server time, and how long a
// nonce is remembered. It matches the real services' 15 minutes.
const ReplayWindow = 15 * time.Minute

// Store is a concurrency-safe set of accounts and keys. Its zero value is not usable; use
// NewStore.
type Store struct {
	now func() time.Time

	mu       sync.Mutex
	accounts map[string]Account
	keys     map[string]Key
	nonces   map[string]time.Time
	lastGC   time.Time
}

// NewStore returns an empty store. now is the clock; nil means time.Now.
func NewStore(now func() time.Time) *Store {
	if now == nil {
		now = time.Now
	}
	return &Store{
		now:      now,
		accounts: make(map[string]Account),
		keys:     make(map[string]Key),
		nonces:   make(map[string]time.Time),
	}
}

// AddAccount registers or replaces an account.
func (s *Store) AddAccount(a Account) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.accounts[a.ID] = a
}

// Account returns the account with the given id.
func (s *Store) Account(id string) (Account, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, ok := s.accounts[id]
	return a, ok
}

// AddKey registers a long-term or STS key. The id must be new.
func (s *Store) AddKey(k Key) error {
	if k.ID == "" || k.Secret == "" {
		return fmt.Errorf("auth: key needs an id and a secret")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, dup := s.keys[k.ID]; dup {
		return fmt.Errorf("auth: key %q already exists", k.ID)
	}
	s.keys[k.ID] = k
	return nil
}

// AssumeRole issues STS credentials for p, valid for ttl, the way STS AssumeRole does: an
// "STS."-prefixed AccessKeyId, a secret and a security token.
func (s *Store) AssumeRole(p Principal, ttl time.Duration) Key {
	k := Key{
		ID:        "STS." + randomString(20),
		Secret:    randomString(32),
		Token:     "CAIS" + randomString(120),
		Expires:   s.now().Add(ttl),
		Principal: p,
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.keys[k.ID] = k
	return k
}

// SetDisabled enables or disables a key, as the RAM console does.
func (s *Store) SetDisabled(id string, disabled bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	k, ok := s.keys[id]
	if !ok {
		return fmt.Errorf("auth: %w: %s", ErrUnknownKey, id)
	}
	k.Disabled = disabled
	s.keys[id] = k
	return nil
}

// SetExpiry changes when a key expires; tests use it to make a token expire now.
func (s *Store) SetExpiry(id string, at time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	k, ok := s.keys[id]
	if !ok {
		return fmt.Errorf("auth: %w: %s", ErrUnknownKey, id)
	}
	k.Expires = at
	s.keys[id] = k
	return nil
}

// Secrets returns every secret and security token the store holds, so tests can check that
// none of them leaked into logs, results or messages.
func (s *Store) Secrets() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]string, 0, 2*len(s.keys))
	for _, k := range s.keys {
		out = append(out, k.Secret)
		if k.Token != "" {
			out = append(out, k.Token)
		}
	}
	return out
}

// Resolve finds the key a request names and checks that it may be used now with the given
// security token (empty when the request carried none). The returned key holds the secret
// to verify the signature with; callers must never log it.
func (s *Store) Resolve(id, token string) (Key, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	k, ok := s.keys[id]
	switch {
	case !ok:
		return Key{}, fmt.Errorf("auth: %w: %s", ErrUnknownKey, id)
	case k.Disabled:
		return Key{}, fmt.Errorf("auth: %w: %s", ErrKeyDisabled, id)
	}
	if a, ok := s.accounts[k.Principal.AccountID]; !ok || a.Closed {
		return Key{}, fmt.Errorf("auth: %w: %s", ErrAccountNotFound, k.Principal.AccountID)
	}
	switch {
	case k.IsSTS() && token == "":
		return Key{}, fmt.Errorf("auth: %w: %s", ErrTokenMissing, id)
	case k.IsSTS() && token != k.Token:
		return Key{}, fmt.Errorf("auth: %w: %s", ErrTokenInvalid, id)
	case !k.IsSTS() && token != "":
		return Key{}, fmt.Errorf("auth: %w: %s", ErrTokenUnexpected, id)
	case !k.Expires.IsZero() && !s.now().Before(k.Expires):
		return Key{}, fmt.Errorf("auth: %w: %s expired at %s", ErrTokenExpired, id, k.Expires.UTC().Format(time.RFC3339))
	}
	return k, nil
}

// CheckReplay enforces the replay rules of signed requests: the timestamp must lie within
// ReplayWindow of server time, and a nonce may be used once within that window. An empty
// nonce skips the nonce check (MNS requests have none).
func (s *Store) CheckReplay(ts time.Time, nonce string) error {
	now := s.now()
	if d := now.Sub(ts); d > ReplayWindow || d < -ReplayWindow {
		return fmt.Errorf("auth: %w: %s is %s from server time %s", ErrStaleTimestamp,
			ts.UTC().Format(time.RFC3339), d.Round(time.Second), now.UTC().Format(time.RFC3339))
	}
	if nonce == "" {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if now.Sub(s.lastGC) > time.Minute {
		for n, seen := range s.nonces {
			if now.Sub(seen) > ReplayWindow {
				delete(s.nonces, n)
			}
		}
		s.lastGC = now
	}
	if _, used := s.nonces[nonce]; used {
		return fmt.Errorf("auth: %w: %s", ErrNonceReused, nonce)
	}
	s.nonces[nonce] = now
	return nil
}

func randomString(n int) string {
	b := make([]byte, (n+1)/2)
	if _, err := rand.Read(b); err != nil {
		// crypto/rand.Read never fails on Linux; a failure here means the process cannot
		// produce credentials at all.
		panic(fmt.Sprintf("auth: crypto/rand: %v", err))
	}
	return hex.EncodeToString(b)[:n]
}
