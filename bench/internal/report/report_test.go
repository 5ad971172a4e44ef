package report

import (
	"strings"
	"testing"
)

func TestEvaluate(t *testing.T) {
	tests := []struct {
		name   string
		f      Figure
		status string
		miss   string
	}{
		{"no target", Figure{Value: 3, Unit: "count"}, StatusInfo, ""},
		{"under", Figure{Value: 400, Unit: "ms"}.Goal("<=", 437, ""), StatusOK, ""},
		{"at", Figure{Value: 4, Unit: "calls/attach"}.Goal("<=", 4, ""), StatusOK, ""},
		{"over", Figure{Value: 874, Unit: "ms"}.Goal("<=", 437, ""), StatusMissed, "by 437 ms (2.00x the target)"},
		{"equal", Figure{Value: 500, Unit: "count"}.Goal("==", 500, ""), StatusOK, ""},
		{"not equal", Figure{Value: 498, Unit: "count"}.Goal("==", 500, ""), StatusMissed, "by 2"},
	}
	for _, tt := range tests {
		tt.f.Evaluate()
		if tt.f.Status != tt.status || tt.f.Miss != tt.miss {
			t.Errorf("%s: %s %q, want %s %q", tt.name, tt.f.Status, tt.f.Miss, tt.status, tt.miss)
		}
	}
}

func TestWriteTable(t *testing.T) {
	figs := []Figure{
		Figure{ID: "1", Group: "single", Name: "p50", Value: 500, Unit: "ms", Command: "go run ./bench -only single"}.
			Goal("<=", 437, "1.15x floor").WithFloor(380, "(3L+T+L)"),
		Figure{ID: "1", Group: "single", Name: "calls", Value: 4, Unit: "calls/event", Command: "go run ./bench -only single"},
	}
	for i := range figs {
		figs[i].Evaluate()
	}
	var b strings.Builder
	if err := WriteTable(&b, figs); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{"1  single\n", "500 ms (1.32x)", "<= 437 ms (1.15x floor)", "380 ms (3L+T+L)", "MISSED by 63 ms", "go run ./bench -only single"} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
	if strings.Count(out, "1  single") != 1 {
		t.Errorf("the run's line should appear once:\n%s", out)
	}
}
