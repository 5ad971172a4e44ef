// Package chart draws the benchmark's pictures as SVG with gonum's plot: the distribution of
// latency ÷ floor per policy, and a burst's timeline.
package chart

import (
	"fmt"
	"image/color"
	"math"
	"os"
	"path/filepath"
	"slices"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
)

// Series is one named sample.
type Series struct {
	Name   string
	Values []float64
}

// RatioCDF writes the empirical distribution of each series' ratios (latency ÷ floor) as
// step lines over a logarithmic ratio axis: the share of events at or below each ratio.
func RatioCDF(path, title string, series []Series) error {
	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text = "latency ÷ floor (log scale)"
	p.Y.Label.Text = "share of events at or below"
	p.X.Scale = plot.LogScale{}
	p.X.Tick.Marker = ratioTicks{}
	p.Y.Min, p.Y.Max = 0, 1
	p.Legend.Top, p.Legend.Left = false, false
	p.Add(plotter.NewGrid())
	lo, hi := math.Inf(1), 1.0
	for i, s := range series {
		if len(s.Values) == 0 {
			continue
		}
		v := slices.Clone(s.Values)
		slices.Sort(v)
		pts := make(plotter.XYs, 0, 2*len(v))
		for k, x := range v {
			if k == 0 {
				pts = append(pts, plotter.XY{X: x, Y: 0})
			}
			pts = append(pts, plotter.XY{X: x, Y: float64(k) / float64(len(v))}, plotter.XY{X: x, Y: float64(k+1) / float64(len(v))})
		}
		lo, hi = min(lo, v[0]), max(hi, v[len(v)-1])
		l, err := plotter.NewLine(pts)
		if err != nil {
			return err
		}
		l.Color = plotutil.Color(i)
		l.Width = vg.Points(1.5)
		p.Add(l)
		p.Legend.Add(fmt.Sprintf("%s (n=%d)", s.Name, len(v)), l)
	}
	p.X.Min, p.X.Max = min(1, lo)*0.95, hi*1.05
	return save(p, path, 7*vg.Inch, 4*vg.Inch)
}

// ratioTicks labels a ratio axis at 1, 1.5, 2, 3, 5, 10, 20, 50, 100.
type ratioTicks struct{}

// Ticks implements plot.Ticker.
func (ratioTicks) Ticks(lo, hi float64) []plot.Tick {
	var out []plot.Tick
	for _, v := range []float64{1, 1.15, 1.5, 2, 3, 5, 10, 20, 50, 100} {
		if v >= lo && v <= hi {
			out = append(out, plot.Tick{Value: v, Label: fmt.Sprint(v)})
		}
	}
	return out
}

// Timeline is what a burst did in each second.
type Timeline struct {
	Attaches, Throttled, Instances, Busy []int
}

// BurstTimeline writes a burst's timeline: attaches ECS accepted, calls it answered
// Throttling, and FC instances alive and busy, per second.
func BurstTimeline(path, title string, t Timeline, quota float64) error {
	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text = "seconds since the launches"
	p.Y.Label.Text = "per second"
	p.Legend.Top = true
	p.Add(plotter.NewGrid())
	lines := []struct {
		name string
		v    []int
		c    color.Color
		dash []vg.Length
	}{
		{"attaches accepted", t.Attaches, plotutil.Color(0), nil},
		{"throttled calls", t.Throttled, plotutil.Color(1), nil},
		{"FC instances alive", t.Instances, plotutil.Color(2), []vg.Length{vg.Points(4), vg.Points(2)}},
		{"FC instances busy", t.Busy, plotutil.Color(3), []vg.Length{vg.Points(1), vg.Points(2)}},
	}
	for _, ln := range lines {
		pts := make(plotter.XYs, len(ln.v))
		for s, n := range ln.v {
			pts[s] = plotter.XY{X: float64(s), Y: float64(n)}
		}
		l, err := plotter.NewLine(pts)
		if err != nil {
			return err
		}
		l.Color, l.Dashes, l.Width = ln.c, ln.dash, vg.Points(1.5)
		p.Add(l)
		p.Legend.Add(ln.name, l)
	}
	if quota > 0 && len(t.Attaches) > 0 {
		q, err := plotter.NewLine(plotter.XYs{{X: 0, Y: quota}, {X: float64(len(t.Attaches) - 1), Y: quota}})
		if err != nil {
			return err
		}
		q.Color, q.Dashes = color.Gray{Y: 120}, []vg.Length{vg.Points(6), vg.Points(3)}
		p.Add(q)
		p.Legend.Add(fmt.Sprintf("attach quota (%g/s)", quota), q)
	}
	// Headroom above the highest line for the legend.
	top := quota
	for _, ln := range lines {
		for _, n := range ln.v {
			top = max(top, float64(n))
		}
	}
	p.Y.Min, p.Y.Max = 0, 1.35*max(top, 1)
	return save(p, path, 7*vg.Inch, 3.5*vg.Inch)
}

func save(p *plot.Plot, path string, w, h vg.Length) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	if err := p.Save(w, h, path); err != nil {
		return fmt.Errorf("chart: %s: %w", path, err)
	}
	return nil
}
