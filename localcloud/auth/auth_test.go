package auth_test

import (
	"errors"
	"testing"
	"time"

	"github.com/enipool/enipool/localcloud/auth"
)

func TestResolve(t *testing.T) {
	now := time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)
	s := auth.NewStore(func() time.Time { return now })
	s.AddAccount(auth.Account{ID: "111", Type: "enterprise"})
	s.AddAccount(auth.Account{ID: "222", Type: "enterprise", Closed: true})
	root := auth.Principal{Name: "root", Kind: auth.KindAccount, AccountID: "111"}
	mustAdd(t, s, auth.Key{ID: "LTAIroot", Secret: "x", Principal: root})
	mustAdd(t, s, auth.Key{ID: "LTAIoff", Secret: "x", Principal: root, Disabled: true})
	mustAdd(t, s, auth.Key{ID: "LTAIclosed", Secret: "x", Principal: auth.Principal{Name: "root", Kind: auth.KindAccount, AccountID: "222"}})
	sts := s.AssumeRole(auth.Principal{Name: "fn", Kind: auth.KindRole, AccountID: "111"}, time.Hour)
	old := s.AssumeRole(auth.Principal{Name: "fn", Kind: auth.KindRole, AccountID: "111"}, -time.Second)

	tests := []struct {
		name    string
		id, tok string
		want    error
	}{
		{"long-term key", "LTAIroot", "", nil},
		{"sts key and token", sts.ID, sts.Token, nil},
		{"unknown key", "LTAInope", "", auth.ErrUnknownKey},
		{"disabled key", "LTAIoff", "", auth.ErrKeyDisabled},
		{"closed account", "LTAIclosed", "", auth.ErrAccountNotFound},
		{"sts without token", sts.ID, "", auth.ErrTokenMissing},
		{"sts with wrong token", sts.ID, "CAISforged", auth.ErrTokenInvalid},
		{"expired token", old.ID, old.Token, auth.ErrTokenExpired},
		{"token with long-term key", "LTAIroot", sts.Token, auth.ErrTokenUnexpected},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k, err := s.Resolve(tt.id, tt.tok)
			if !errors.Is(err, tt.want) {
				t.Fatalf("Resolve error = %v, want %v", err, tt.want)
			}
			if err == nil && k.ID != tt.id {
				t.Fatalf("Resolve returned key %q, want %q", k.ID, tt.id)
			}
		})
	}
}

func TestCheckReplay(t *testing.T) {
	now := time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)
	s := auth.NewStore(func() time.Time { return now })
	tests := []struct {
		name  string
		ts    time.Time
		nonce string
		want  error
	}{
		{"fresh", now, "n1", nil},
		{"reused nonce", now, "n1", auth.ErrNonceReused},
		{"14 minutes ago", now.Add(-14 * time.Minute), "n2", nil},
		{"16 minutes ago", now.Add(-16 * time.Minute), "n3", auth.ErrStaleTimestamp},
		{"16 minutes ahead", now.Add(16 * time.Minute), "n4", auth.ErrStaleTimestamp},
		{"no nonce (MNS)", now, "", nil},
		{"no nonce again", now, "", nil},
	}
	for _, tt := range tests {
		if err := s.CheckReplay(tt.ts, tt.nonce); !errors.Is(err, tt.want) {
			t.Errorf("%s: CheckReplay = %v, want %v", tt.name, err, tt.want)
		}
	}
}

func mustAdd(t *testing.T, s *auth.Store, k auth.Key) {
	t.Helper()
	if err := s.AddKey(k); err != nil {
		t.Fatal(err)
	}
}
