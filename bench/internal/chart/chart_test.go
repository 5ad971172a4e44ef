package chart

import (
	"encoding/xml"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// wellFormed reads path as XML to its end and returns its text.
func wellFormed(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	d := xml.NewDecoder(strings.NewReader(string(b)))
	for {
		_, err := d.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("%s is not well-formed SVG: %v", path, err)
		}
	}
	return string(b)
}

func TestCharts(t *testing.T) {
	dir := t.TempDir()
	ratios := filepath.Join(dir, "sub", "ratio.svg")
	err := RatioCDF(ratios, "ratios", []Series{
		{Name: "enipool", Values: []float64{1.1, 1.2, 1.05, 2.5}},
		{Name: "oos", Values: []float64{7, 6, 12}},
		{Name: "empty"},
	})
	if err != nil {
		t.Fatal(err)
	}
	svg := wellFormed(t, ratios)
	for _, want := range []string{"<svg", "enipool (n=4)", "oos (n=3)", "latency ÷ floor"} {
		if !strings.Contains(svg, want) {
			t.Errorf("the ratio chart lacks %q", want)
		}
	}
	if strings.Contains(svg, "empty") {
		t.Error("a series without values is drawn")
	}
	timeline := filepath.Join(dir, "timeline.svg")
	if err := BurstTimeline(timeline, "burst", Timeline{Attaches: []int{40, 20, 20}, Throttled: []int{0, 3, 0}, Instances: []int{50, 100, 100}, Busy: []int{50, 90, 10}}, 20); err != nil {
		t.Fatal(err)
	}
	svg = wellFormed(t, timeline)
	for _, want := range []string{"attaches accepted", "throttled calls", "FC instances alive", "attach quota (20/s)"} {
		if !strings.Contains(svg, want) {
			t.Errorf("the timeline lacks %q", want)
		}
	}
}
