package cloud_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/enipool/enipool/cloud"
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
	rules := cloud.Rules()
	for code, status := range seedCodes(t) {
		var matches []cloud.Rule
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
		if r.Meaning == "" || r.Verdict == "" {
			t.Errorf("%s: rule has no action or meaning", code)
		}
		got, _ := cloud.Classify(&cloud.APIError{Service: "ecs", API: "AttachNetworkInterface", Code: code, HTTPStatus: status})
		if got != r.Verdict {
			t.Errorf("Classify(%s) = %s, want the table's %s", code, got, r.Verdict)
		}
	}
}

func TestRulesAreUniqueAndComplete(t *testing.T) {
	seen := map[string]bool{}
	valid := map[cloud.Verdict]bool{cloud.VerdictRetry: true, cloud.VerdictWaitInstance: true, cloud.VerdictNextENI: true, cloud.VerdictDeadLetter: true, cloud.VerdictSkip: true}
	for _, r := range cloud.Rules() {
		if seen[r.Code] {
			t.Errorf("code %s has two rules", r.Code)
		}
		seen[r.Code] = true
		if !valid[r.Verdict] {
			t.Errorf("code %s has unknown action %q", r.Code, r.Verdict)
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
		want cloud.Verdict
	}{
		{"throttling", &cloud.APIError{Code: "Throttling", HTTPStatus: 400}, cloud.VerdictRetry},
		{"throttling.user", &cloud.APIError{Code: "Throttling.User", HTTPStatus: 400}, cloud.VerdictRetry},
		{"throttling.api", &cloud.APIError{Code: "Throttling.Api", HTTPStatus: 400}, cloud.VerdictRetry},
		{"rejected throttling", &cloud.APIError{Code: "Rejected.Throttling", HTTPStatus: 400}, cloud.VerdictRetry},
		{"5xx", &cloud.APIError{Code: "ServiceUnavailable", HTTPStatus: 503}, cloud.VerdictRetry},
		{"unknown 5xx", &cloud.APIError{Code: "Something.New", HTTPStatus: 502}, cloud.VerdictRetry},
		{"unknown 4xx", &cloud.APIError{Code: "Something.New", HTTPStatus: 400}, cloud.VerdictDeadLetter},
		{"transport", &cloud.APIError{Err: errors.New("connection reset by peer")}, cloud.VerdictRetry},
		{"plain error", errors.New("boom"), cloud.VerdictRetry},
		{"wrapped", fmt.Errorf("attach: %w", &cloud.APIError{Code: "InvalidOperation.InvalidEniState", HTTPStatus: 400}), cloud.VerdictNextENI},
		{"RAM", &cloud.APIError{Code: "Forbidden.RAM", HTTPStatus: 403}, cloud.VerdictDeadLetter},
		{"problem", cloud.Problemf(cloud.CodePoolExhausted, "empty"), cloud.VerdictDeadLetter},
		{"not ours", cloud.Problemf(cloud.CodeNotEligible, "untagged"), cloud.VerdictSkip},
	}
	for _, tt := range tests {
		if got, _ := cloud.Classify(tt.err); got != tt.want {
			t.Errorf("%s: Classify = %s, want %s", tt.name, got, tt.want)
		}
	}
}

func TestMarkdownTableHasEveryRule(t *testing.T) {
	var b strings.Builder
	if err := cloud.WriteMarkdownTable(&b); err != nil {
		t.Fatal(err)
	}
	for _, r := range cloud.Rules() {
		if !strings.Contains(b.String(), "| `"+r.Code+"` |") {
			t.Errorf("table lacks %s", r.Code)
		}
	}
}
