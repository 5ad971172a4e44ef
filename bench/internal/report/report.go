// Package report turns benchmark measurements into figures, each beside its target, its
// floor and the command that reproduces it, prints them as a table and describes the machine
// they were measured on.
package report

import (
	"bufio"
	"fmt"
	"io"
	"math"
	"os"
	"runtime"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Status of a figure against its target.
const (
	StatusOK     = "ok"
	StatusMissed = "MISSED"
	StatusInfo   = "info" // no target: reported for what it shows
)

// Figure is one measured number.
type Figure struct {
	// ID names the scenario and run ("1", "2a", "3b", ...) and Group describes that run;
	// Name says what is measured.
	ID    string `json:"id"`
	Group string `json:"group"`
	Name  string `json:"name"`
	// Value is the measurement, in Unit ("ms", "s", "MiB", "calls", "count", "calls/attach").
	Value float64 `json:"value"`
	Unit  string  `json:"unit"`
	// Op and Target are the goal ("<=" or "=="); Op is empty when there is none.
	Op     string  `json:"op,omitempty"`
	Target float64 `json:"target,omitempty"`
	// TargetNote says where the target comes from ("1.15 x floor").
	TargetNote string `json:"targetNote,omitempty"`
	// Floor is the least possible value (or, for ratios against a baseline, the baseline),
	// when there is one; FloorNote says which.
	Floor     *float64 `json:"floor,omitempty"`
	FloorNote string   `json:"floorNote,omitempty"`
	// Status is ok, MISSED or info; Miss says by how much a target was missed.
	Status string `json:"status"`
	Miss   string `json:"miss,omitempty"`
	// Command reproduces the figure.
	Command string `json:"command"`
	// Note qualifies the figure (what it includes, what run it comes from).
	Note string `json:"note,omitempty"`
}

// WithFloor sets the floor (or baseline) and what it is.
func (f Figure) WithFloor(v float64, note string) Figure {
	f.Floor, f.FloorNote = &v, note
	return f
}

// Goal sets the target.
func (f Figure) Goal(op string, v float64, note string) Figure {
	f.Op, f.Target, f.TargetNote = op, v, note
	return f
}

// Evaluate sets Status and Miss from the value and the target.
func (f *Figure) Evaluate() {
	f.Status, f.Miss = StatusInfo, ""
	const eps = 1e-9
	switch f.Op {
	case "":
		return
	case "<=":
		if f.Value <= f.Target+eps {
			f.Status = StatusOK
			return
		}
		f.Status = StatusMissed
		f.Miss = fmt.Sprintf("by %s (%.2fx the target)", f.format(f.Value-f.Target), f.Value/f.Target)
	case "==":
		if math.Abs(f.Value-f.Target) < eps {
			f.Status = StatusOK
			return
		}
		f.Status = StatusMissed
		f.Miss = fmt.Sprintf("by %s", f.format(math.Abs(f.Value-f.Target)))
	default:
		f.Status = StatusMissed
		f.Miss = "unknown target operator " + f.Op
	}
}

func (f *Figure) format(v float64) string {
	switch f.Unit {
	case "ms":
		return fmt.Sprintf("%.0f ms", v)
	case "s":
		return fmt.Sprintf("%.2f s", v)
	case "MiB":
		return fmt.Sprintf("%.1f MiB", v)
	case "calls/attach", "calls/event", "per s":
		return fmt.Sprintf("%.2f %s", v, f.Unit)
	default:
		if v == math.Trunc(v) {
			return fmt.Sprintf("%.0f", v)
		}
		return fmt.Sprintf("%.2f", v)
	}
}

// Measured is the value as printed, with its ratio to the floor when there is one.
func (f *Figure) Measured() string {
	s := f.format(f.Value)
	if f.Floor != nil && *f.Floor > 0 && (f.Unit == "ms" || f.Unit == "s" || f.Unit == "MiB") {
		s += fmt.Sprintf(" (%.2fx)", f.Value / *f.Floor)
	}
	return s
}

// TargetText is the target as printed.
func (f *Figure) TargetText() string {
	if f.Op == "" {
		return "-"
	}
	s := f.Op + " " + f.format(f.Target)
	if f.TargetNote != "" {
		s += " (" + f.TargetNote + ")"
	}
	return s
}

// FloorText is the floor as printed.
func (f *Figure) FloorText() string {
	if f.Floor == nil {
		return "-"
	}
	s := f.format(*f.Floor)
	if f.FloorNote != "" {
		s += " " + f.FloorNote
	}
	return s
}

// ResultText is the status as printed.
func (f *Figure) ResultText() string {
	if f.Miss != "" {
		return f.Status + " " + f.Miss
	}
	return f.Status
}

// WriteTable prints the figures as an aligned table, each run's figures under a line naming
// the run. Figures must be evaluated.
func WriteTable(w io.Writer, figs []Figure) error {
	rows := [][]string{{"FIGURE", "MEASURED (x floor)", "TARGET", "FLOOR / BASELINE", "RESULT", "REPRODUCE"}}
	for _, f := range figs {
		rows = append(rows, []string{f.Name, f.Measured(), f.TargetText(), f.FloorText(), f.ResultText(), f.Command})
	}
	width := make([]int, len(rows[0]))
	for _, r := range rows {
		for i, c := range r {
			width[i] = max(width[i], utf8.RuneCountInString(c))
		}
	}
	line := func(cells []string) string {
		var b strings.Builder
		b.WriteString("    ")
		for i, c := range cells {
			b.WriteString(c)
			if i < len(cells)-1 {
				b.WriteString(strings.Repeat(" ", width[i]-utf8.RuneCountInString(c)+2))
			}
		}
		return b.String()
	}
	var out strings.Builder
	out.WriteString(line(rows[0]) + "\n")
	prev := ""
	for i, f := range figs {
		if f.ID != prev {
			fmt.Fprintf(&out, "%s  %s\n", f.ID, f.Group)
			prev = f.ID
		}
		out.WriteString(line(rows[i+1]) + "\n")
	}
	_, err := io.WriteString(w, out.String())
	return err
}

// Machine describes where the figures were measured.
type Machine struct {
	CPU         string `json:"cpu"`
	Cores       int    `json:"cores"`
	MemoryBytes int64  `json:"memoryBytes"`
	Go          string `json:"go"`
	OS          string `json:"os"`
	Kernel      string `json:"kernel,omitempty"`
	Distro      string `json:"distro,omitempty"`
}

// ReadMachine reads the machine's description from /proc and the Go runtime.
func ReadMachine() Machine {
	m := Machine{Cores: runtime.NumCPU(), Go: runtime.Version(), OS: runtime.GOOS + "/" + runtime.GOARCH}
	m.CPU = procField("/proc/cpuinfo", "model name", ":")
	if kb, err := strconv.ParseInt(strings.TrimSuffix(procField("/proc/meminfo", "MemTotal", ":"), " kB"), 10, 64); err == nil {
		m.MemoryBytes = kb << 10
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	m.Distro = strings.Trim(procField("/etc/os-release", "PRETTY_NAME", "="), `"`)
	return m
}

// procField returns the value of the first line of a "key<sep>value" file whose key is key.
func procField(path, key, sep string) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), sep)
		if ok && strings.TrimSpace(k) == key {
			return strings.TrimSpace(v)
		}
	}
	return ""
}
