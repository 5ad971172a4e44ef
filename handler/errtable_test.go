package handler

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/enipool/enipool/internal/apidoc"
)

// seedCodes reads the error table of AttachNetworkInterface's API reference (kept in the
// repository's testdata/): every code it documents, with its HTTP status.
func seedCodes(t *testing.T) map[string]int {
	t.Helper()
	table, err := apidoc.AttachErrors("..")
	if err != nil {
		t.Fatal(err)
	}
	codes := map[string]int{}
	for _, c := range table {
		codes[c.Code] = c.HTTPStatus
	}
	return codes
}

func TestEverySeedCodeHasExactlyOneRule(t *testing.T) {
	rules := Rules()
	for code, status := range seedCodes(t) {
		var matches []Rule
		for _, r := range rules {
			if r.Code == code {
				matches = append(matches, r)
			}
		}
		if len(matches) != 1 {
			t.Errorf("%s: %d exact rules, want 1", code, len(matches))
			continue
		}
		r := matches[0]
		if r.HTTPStatus != status {
			t.Errorf("%s: rule says HTTP %d, the seed says %d", code, r.HTTPStatus, status)
		}
		if r.Meaning == "" || r.Action == "" {
			t.Errorf("%s: rule has no action or meaning", code)
		}
		got, _ := Classify(&APIError{Service: "ecs", API: "AttachNetworkInterface", Code: code, HTTPStatus: status})
		if got != r.Action {
			t.Errorf("Classify(%s) = %s, want the table's %s", code, got, r.Action)
		}
	}
}

func TestRulesAreUniqueAndComplete(t *testing.T) {
	seen := map[string]bool{}
	valid := map[Action]bool{ActionRetry: true, ActionWaitInstance: true, ActionNextENI: true, ActionDeadLetter: true, ActionSkip: true}
	for _, r := range Rules() {
		if seen[r.Code] {
			t.Errorf("code %s has two rules", r.Code)
		}
		seen[r.Code] = true
		if !valid[r.Action] {
			t.Errorf("code %s has unknown action %q", r.Code, r.Action)
		}
		if r.Meaning == "" {
			t.Errorf("code %s has no meaning", r.Code)
		}
	}
}

func TestClassify(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want Action
	}{
		{"throttling", &APIError{Code: "Throttling", HTTPStatus: 400}, ActionRetry},
		{"throttling.user", &APIError{Code: "Throttling.User", HTTPStatus: 400}, ActionRetry},
		{"throttling.api", &APIError{Code: "Throttling.Api", HTTPStatus: 400}, ActionRetry},
		{"rejected throttling", &APIError{Code: "Rejected.Throttling", HTTPStatus: 400}, ActionRetry},
		{"5xx", &APIError{Code: "ServiceUnavailable", HTTPStatus: 503}, ActionRetry},
		{"unknown 5xx", &APIError{Code: "Something.New", HTTPStatus: 502}, ActionRetry},
		{"unknown 4xx", &APIError{Code: "Something.New", HTTPStatus: 400}, ActionDeadLetter},
		{"transport", &APIError{Err: errors.New("connection reset by peer")}, ActionRetry},
		{"plain error", errors.New("boom"), ActionRetry},
		{"wrapped", fmt.Errorf("attach: %w", &APIError{Code: "InvalidOperation.InvalidEniState", HTTPStatus: 400}), ActionNextENI},
		{"RAM", &APIError{Code: "Forbidden.RAM", HTTPStatus: 403}, ActionDeadLetter},
		{"problem", problem(CodePoolExhausted, "empty"), ActionDeadLetter},
		{"not ours", problem(CodeNotEligible, "untagged"), ActionSkip},
	}
	for _, tt := range tests {
		if got, _ := Classify(tt.err); got != tt.want {
			t.Errorf("%s: Classify = %s, want %s", tt.name, got, tt.want)
		}
	}
}

func TestMarkdownTableHasEveryRule(t *testing.T) {
	var b strings.Builder
	if err := WriteMarkdownTable(&b); err != nil {
		t.Fatal(err)
	}
	for _, r := range Rules() {
		if !strings.Contains(b.String(), "| `"+r.Code+"` |") {
			t.Errorf("table lacks %s", r.Code)
		}
	}
}

func TestRankIsStableAndSpreads(t *testing.T) {
	var pool []ENI
	for i := range 100 {
		pool = append(pool, ENI{ID: fmt.Sprintf("eni-%03d", i)})
	}
	first := map[string]int{}
	for i := range 1000 {
		key := fmt.Sprintf("i-%04d", i)
		a, b := rank(key, pool), rank(key, pool)
		if a[0].ID != b[0].ID {
			t.Fatal("rank is not deterministic")
		}
		first[a[0].ID]++
	}
	// 1000 instances over 100 ENIs: every ENI should be someone's first choice, none hugely so.
	if len(first) < 95 {
		t.Errorf("first choices cover %d of 100 ENIs, want nearly all", len(first))
	}
	for id, n := range first {
		if n > 30 {
			t.Errorf("%s is the first choice of %d of 1000 instances", id, n)
		}
	}
}
