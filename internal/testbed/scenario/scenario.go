package scenario

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/enipool/enipool/localcloud/fault"
	"github.com/enipool/enipool/localcloud/world"
)

// Defaults of the format; each is documented in the package doc.
const (
	DefaultTagKey   = "enipool"
	DefaultPending  = 2 * time.Second
	DefaultWithin   = 60 * time.Second
	DefaultDeadline = 30 * time.Minute
	// WorkQueue is the queue alias of send steps: the queue of s.yaml's MNS event stream.
	WorkQueue = "work"
	// NoHook is the launch hook that starts no lifecycle action.
	NoHook = "none"
)

// Scenario is a validated scenario: a world and a timeline.
type Scenario struct {
	// Name defaults to the file name without its extension.
	Name        string
	Description string
	// Project is the s.yaml whose triggers and configuration the function runs with, resolved
	// against the scenario file's directory; empty leaves it to the runner.
	Project string
	// World is the validated world, pools included; WorldSource names where it came from.
	World       *world.World
	WorldSource string
	TagKey      string
	FC          FC
	Bus         Bus
	Seed        uint64
	Timeline    []Step
	End         End
}

// FC shapes the local Function Compute.
type FC struct {
	// MaxInstances caps the function's concurrent instances; 0 means FC's default quota
	// (fcrt.DefaultMaxInstances).
	MaxInstances int `yaml:"maxInstances,omitempty"`
	// IdleTimeout reclaims an instance idle that long, so that a later invocation cold-starts;
	// 0 keeps instances until the end.
	IdleTimeout fault.Duration `yaml:"idleTimeout,omitempty"`
}

// Bus shapes the default event bus's at-least-once delivery (trigger.BusOptions).
type Bus struct {
	MinDelay   fault.Duration `yaml:"minDelay,omitempty"`
	MaxDelay   fault.Duration `yaml:"maxDelay,omitempty"`
	Duplicates float64        `yaml:"duplicates,omitempty"`
}

// Pool adds Available pool ENIs to the world, so that a fleet of hundreds needs no list of
// hundreds of ENIs.
type Pool struct {
	Pool  string `yaml:"pool"`
	Count int    `yaml:"count"`
	// VSwitches take the ENIs round-robin; default every vSwitch of the world that is not deleted.
	VSwitches []string `yaml:"vswitches,omitempty"`
	// SecurityGroups default to the first VPC security group of each vSwitch's VPC.
	SecurityGroups []string `yaml:"securityGroups,omitempty"`
}

// Step is one entry of the timeline: exactly one of its fields is set.
type Step struct {
	Launch  *Launch         `yaml:"launch,omitempty"`
	Stop    *Select         `yaml:"stop,omitempty"`
	Start   *Select         `yaml:"start,omitempty"`
	Release *Release        `yaml:"release,omitempty"`
	Send    *Send           `yaml:"send,omitempty"`
	Wait    *fault.Duration `yaml:"wait,omitempty"`
}

// Kind names the step's kind, as the file spells it.
func (s Step) Kind() string {
	switch {
	case s.Launch != nil:
		return "launch"
	case s.Stop != nil:
		return "stop"
	case s.Start != nil:
		return "start"
	case s.Release != nil:
		return "release"
	case s.Send != nil:
		return "send"
	case s.Wait != nil:
		return "wait"
	}
	return ""
}

// Launch is a scaling activity: Count instances of a pool launched evenly over Over, each
// through Pending and Starting to Running; with a scale-out lifecycle hook, one lifecycle
// action for all of them starts once none is Pending or Starting any more.
type Launch struct {
	Count int            `yaml:"count"`
	Pool  string         `yaml:"pool"`
	Over  fault.Duration `yaml:"over,omitempty"`
	// As labels the launched instances for later steps' from.
	As string `yaml:"as,omitempty"`
	// Type defaults to the world's first instance type that takes ENIs while Running.
	Type string `yaml:"type,omitempty"`
	// VSwitches take the instances round-robin; default the vSwitches of the pool's ENIs.
	VSwitches []string `yaml:"vswitches,omitempty"`
	// SecurityGroups default to those of the pool's first ENI.
	SecurityGroups []string `yaml:"securityGroups,omitempty"`
	// Hook is the SCALE_OUT lifecycle hook; default the world's only one, if it has exactly
	// one; "none" for no lifecycle action.
	Hook string `yaml:"hook,omitempty"`
	// Pending and Starting are how long each instance stays in those states; defaults 2s and
	// the world's timing.start.
	Pending  fault.Duration `yaml:"pending,omitempty"`
	Starting fault.Duration `yaml:"starting,omitempty"`
}

// Select picks instances: the listed IDs, or the first Count (in id order) of the instances
// launched under the label From, or of the pool Pool, or of the whole world, that are in a
// state the step can act on.
type Select struct {
	IDs   []string `yaml:"ids,omitempty"`
	Count int      `yaml:"count,omitempty"`
	From  string   `yaml:"from,omitempty"`
	Pool  string   `yaml:"pool,omitempty"`
	// Within bounds how long the step waits for its instances to reach the state it acts on
	// (Running to stop, Stopped to start, a pool ENI attaching to release); default 60s.
	Within fault.Duration `yaml:"within,omitempty"`
}

// Release releases instances, at once or, with WhileAttaching, each at a moment when one of
// its pool ENIs is Attaching.
type Release struct {
	Select         `yaml:",inline"`
	WhileAttaching bool `yaml:"whileAttaching,omitempty"`
}

// Send sends Count messages to a queue, evenly over Over: what a producer of work-queue
// events does. Body may hold {{instance}} (instances of From or Pool, round-robin),
// {{region}} and {{n}} (the message's number from 1).
type Send struct {
	Queue string         `yaml:"queue"`
	Count int            `yaml:"count"`
	Body  string         `yaml:"body"`
	Over  fault.Duration `yaml:"over,omitempty"`
	From  string         `yaml:"from,omitempty"`
	Pool  string         `yaml:"pool,omitempty"`
}

// End says when the scenario is over: once nothing has happened for Quiet (no world change,
// API call, delivery or invocation, and nothing in flight), or at Deadline after the start,
// whichever comes first.
type End struct {
	Quiet    fault.Duration `yaml:"quiet,omitempty"`
	Deadline fault.Duration `yaml:"deadline,omitempty"`
}

// file is the scenario file as written.
type file struct {
	Name        string    `yaml:"name,omitempty"`
	Description string    `yaml:"description,omitempty"`
	Project     string    `yaml:"project,omitempty"`
	World       yaml.Node `yaml:"world"`
	TagKey      string    `yaml:"tagKey,omitempty"`
	Pools       []Pool    `yaml:"pools,omitempty"`
	FC          FC        `yaml:"fc,omitempty"`
	Bus         Bus       `yaml:"bus,omitempty"`
	Seed        uint64    `yaml:"seed,omitempty"`
	Timeline    []Step    `yaml:"timeline"`
	End         End       `yaml:"end"`
}

// Load reads and validates a scenario file; relative paths in it (the world file, the
// project) are resolved against its directory.
func Load(path string) (*Scenario, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("scenario: %w", err)
	}
	sc, err := Parse(data, filepath.Dir(path))
	if err != nil {
		return nil, fmt.Errorf("scenario %s: %w", path, err)
	}
	if sc.Name == "" {
		sc.Name = strings.TrimSuffix(filepath.Base(path), filepath.Ext(path))
	}
	return sc, nil
}

// Parse reads and validates a scenario in YAML. baseDir resolves relative paths. Every
// problem is reported, each prefixed with the path of its field.
func Parse(data []byte, baseDir string) (*Scenario, error) {
	var f file
	d := yaml.NewDecoder(bytes.NewReader(data))
	d.KnownFields(true)
	if err := d.Decode(&f); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("scenario: %w", err)
	}
	sc := &Scenario{Name: f.Name, Description: f.Description, TagKey: f.TagKey, FC: f.FC, Bus: f.Bus,
		Seed: f.Seed, Timeline: f.Timeline, End: f.End}
	if sc.TagKey == "" {
		sc.TagKey = DefaultTagKey
	}
	if f.Project != "" {
		sc.Project = resolve(baseDir, f.Project)
	}
	var p problems
	w, src, err := loadWorld(&f, baseDir, sc.TagKey, &p)
	if err != nil {
		return nil, err
	}
	if w == nil {
		return nil, p.err()
	}
	sc.World, sc.WorldSource = w, src
	sc.validate(&p)
	if err := p.err(); err != nil {
		return nil, err
	}
	return sc, nil
}

// loadWorld builds the world: from a file (world: PATH) or inline (world: {...}), with the
// pools' ENIs added. Problems with the pools go to p; a world that does not parse is the
// returned error, or nil with p's problems when the pools are wrong.
func loadWorld(f *file, baseDir, tagKey string, p *problems) (*world.World, string, error) {
	var raw map[string]any
	var src, worldDir string
	switch f.World.Kind {
	case 0:
		p.add("world", "required: a world file path or an inline world")
		return nil, "", nil
	case yaml.ScalarNode:
		path := resolve(baseDir, f.World.Value)
		data, err := os.ReadFile(path)
		if err != nil {
			return nil, "", fmt.Errorf("world: %w", err)
		}
		if err := yaml.Unmarshal(data, &raw); err != nil {
			return nil, "", fmt.Errorf("world %s: %w", path, err)
		}
		src, worldDir = path, filepath.Dir(path)
	case yaml.MappingNode:
		if err := f.World.Decode(&raw); err != nil {
			return nil, "", fmt.Errorf("world: %w", err)
		}
		src, worldDir = "inline", baseDir
	default:
		p.add("world", "want a file path or a mapping")
		return nil, "", nil
	}
	parse := func() (*world.World, error) {
		data, err := yaml.Marshal(raw)
		if err != nil {
			return nil, fmt.Errorf("world: %w", err)
		}
		w, err := world.Parse(data, "yaml", worldDir)
		if err != nil {
			return nil, fmt.Errorf("world (%s): %w", src, err)
		}
		return w, nil
	}
	w, err := parse()
	if err != nil || len(f.Pools) == 0 {
		return w, src, err
	}
	enis, ok := poolENIs(w, f.Pools, tagKey, p)
	if !ok {
		return nil, src, nil
	}
	list, _ := raw["enis"].([]any)
	raw["enis"] = append(list, enis...)
	w, err = parse()
	return w, src, err
}

// poolENIs returns the pools' ENIs as world-file entries.
func poolENIs(w *world.World, pools []Pool, tagKey string, p *problems) ([]any, bool) {
	bad := len(*p)
	var out []any
	for i, pl := range pools {
		path := fmt.Sprintf("pools[%d]", i)
		if pl.Pool == "" {
			p.add(path+".pool", "required")
		}
		if pl.Count <= 0 {
			p.add(path+".count", "must be positive, got %d", pl.Count)
		}
		vsws := pl.VSwitches
		if len(vsws) == 0 {
			for _, v := range w.VSwitches {
				if !v.Deleted {
					vsws = append(vsws, v.ID)
				}
			}
		}
		for j, id := range pl.VSwitches {
			if v, ok := w.VSwitch(id); !ok || v.Deleted {
				p.add(fmt.Sprintf("%s.vswitches[%d]", path, j), "unknown vSwitch %q", id)
			}
		}
		for j, id := range pl.SecurityGroups {
			if _, ok := w.SecurityGroup(id); !ok {
				p.add(fmt.Sprintf("%s.securityGroups[%d]", path, j), "unknown security group %q", id)
			}
		}
		if len(vsws) == 0 {
			p.add(path+".vswitches", "the world has no vSwitch to put the ENIs on")
		}
		if len(*p) > bad {
			continue
		}
		for n := range pl.Count {
			vsw, _ := w.VSwitch(vsws[n%len(vsws)])
			sgs := pl.SecurityGroups
			if len(sgs) == 0 {
				for _, g := range w.SecurityGroups {
					if g.VPC == vsw.VPC && !g.Deleted && g.Type != world.SecurityGroupClassic {
						sgs = []string{g.ID}
						break
					}
				}
			}
			if len(sgs) == 0 {
				p.add(path+".securityGroups", "no security group in VPC %s of vSwitch %s", vsw.VPC, vsw.ID)
				return nil, false
			}
			out = append(out, map[string]any{
				"id":             fmt.Sprintf("eni-scn%dpool%06d", i, n+1),
				"vswitch":        vsw.ID,
				"securityGroups": sgs,
				"tags":           map[string]string{tagKey: pl.Pool},
				"creationTime":   "-1h",
			})
		}
	}
	return out, len(*p) == bad
}

// validate checks the timeline and the end, resolving the launch defaults from the world.
func (sc *Scenario) validate(p *problems) {
	w := sc.World
	if sc.FC.MaxInstances < 0 {
		p.add("fc.maxInstances", "must not be negative")
	}
	if sc.FC.IdleTimeout < 0 {
		p.add("fc.idleTimeout", "must not be negative")
	}
	if b := sc.Bus; b.MinDelay < 0 || b.MaxDelay < 0 || b.MinDelay > b.MaxDelay {
		p.add("bus", "want 0 <= minDelay <= maxDelay, got %s and %s", b.MinDelay.D(), b.MaxDelay.D())
	}
	if d := sc.Bus.Duplicates; d < 0 || d > 1 {
		p.add("bus.duplicates", "a probability in [0, 1], got %g", d)
	}
	if len(sc.Timeline) == 0 {
		p.add("timeline", "required: at least one step")
	}
	labels := map[string]bool{}
	known := func(path, label string) {
		if label != "" && !labels[label] {
			p.add(path, "no earlier launch step is labelled %q (launch.as)", label)
		}
	}
	for i := range sc.Timeline {
		s := &sc.Timeline[i]
		path := fmt.Sprintf("timeline[%d]", i)
		n := 0
		for _, set := range []bool{s.Launch != nil, s.Stop != nil, s.Start != nil, s.Release != nil, s.Send != nil, s.Wait != nil} {
			if set {
				n++
			}
		}
		if n != 1 {
			p.add(path, "want exactly one of launch, stop, start, release, send, wait; got %d", n)
			continue
		}
		path += "." + s.Kind()
		switch {
		case s.Launch != nil:
			sc.validateLaunch(path, s.Launch, p)
			if l := s.Launch.As; l != "" {
				if labels[l] {
					p.add(path+".as", "label %q is used by an earlier launch", l)
				}
				labels[l] = true
			}
		case s.Stop != nil:
			validateSelect(path, s.Stop, w, p)
			known(path+".from", s.Stop.From)
		case s.Start != nil:
			validateSelect(path, s.Start, w, p)
			known(path+".from", s.Start.From)
		case s.Release != nil:
			validateSelect(path, &s.Release.Select, w, p)
			known(path+".from", s.Release.From)
		case s.Send != nil:
			m := s.Send
			if m.Queue == "" {
				p.add(path+".queue", "required: a queue of the world, or %q for s.yaml's work queue", WorkQueue)
			} else if m.Queue != WorkQueue && !slices.Contains(w.Queues, m.Queue) {
				p.add(path+".queue", "unknown queue %q (the world's: %s; or %q)", m.Queue, strings.Join(w.Queues, ", "), WorkQueue)
			}
			if m.Count <= 0 {
				p.add(path+".count", "must be positive, got %d", m.Count)
			}
			if m.Body == "" {
				p.add(path+".body", "required")
			}
			if m.Over < 0 {
				p.add(path+".over", "must not be negative")
			}
			if m.From != "" && m.Pool != "" {
				p.add(path, "from and pool exclude each other")
			}
			known(path+".from", m.From)
		case s.Wait != nil:
			if *s.Wait <= 0 {
				p.add(path, "must be positive, got %s", s.Wait.D())
			}
		}
	}
	if sc.End.Quiet < 0 {
		p.add("end.quiet", "must not be negative")
	}
	if sc.End.Deadline < 0 {
		p.add("end.deadline", "must not be negative")
	}
	switch {
	case sc.End.Quiet == 0 && sc.End.Deadline == 0:
		p.add("end", "required: quiet, deadline or both")
	case sc.End.Deadline == 0:
		sc.End.Deadline = fault.Duration(DefaultDeadline)
	case sc.End.Quiet > 0 && sc.End.Quiet >= sc.End.Deadline:
		p.add("end.quiet", "%s can never pass before the deadline %s", sc.End.Quiet.D(), sc.End.Deadline.D())
	}
}

// validateLaunch checks a launch and fills its defaults.
func (sc *Scenario) validateLaunch(path string, l *Launch, p *problems) {
	w := sc.World
	if l.Count <= 0 {
		p.add(path+".count", "must be positive, got %d", l.Count)
	}
	if l.Pool == "" {
		p.add(path+".pool", "required: the value of the %s tag the instances carry", sc.TagKey)
	}
	if l.Over < 0 {
		p.add(path+".over", "must not be negative")
	}
	if l.Pending < 0 || l.Starting < 0 {
		p.add(path, "pending and starting must not be negative")
	}
	if l.Pending == 0 {
		l.Pending = fault.Duration(DefaultPending)
	}
	if l.Starting == 0 {
		l.Starting = w.Timing.Start
	}
	if l.Type == "" {
		for _, t := range w.InstanceTypes {
			if t.ENIQuantity > 1 && t.Generation != world.GenerationWithoutENI && !t.AttachRequiresStopped {
				l.Type = t.ID
				break
			}
		}
		if l.Type == "" {
			p.add(path+".type", "required: the world has no instance type that takes ENIs while Running")
		}
	} else if _, ok := w.InstanceType(l.Type); !ok {
		p.add(path+".type", "unknown instance type %q", l.Type)
	}
	var poolENIs []world.ENI
	for _, e := range w.ENIs {
		if e.Tags[sc.TagKey] == l.Pool && e.Type != world.ENIPrimary {
			poolENIs = append(poolENIs, e)
		}
	}
	if len(l.VSwitches) == 0 {
		for _, e := range poolENIs {
			if !slices.Contains(l.VSwitches, e.VSwitch) {
				l.VSwitches = append(l.VSwitches, e.VSwitch)
			}
		}
		slices.Sort(l.VSwitches)
		if len(l.VSwitches) == 0 && l.Pool != "" {
			p.add(path+".vswitches", "required: the world has no ENI of pool %q to take them from", l.Pool)
		}
	}
	for j, id := range l.VSwitches {
		if v, ok := w.VSwitch(id); !ok || v.Deleted {
			p.add(fmt.Sprintf("%s.vswitches[%d]", path, j), "unknown vSwitch %q", id)
		}
	}
	if len(l.SecurityGroups) == 0 && len(poolENIs) > 0 {
		l.SecurityGroups = poolENIs[0].SecurityGroups
	}
	for j, id := range l.SecurityGroups {
		if g, ok := w.SecurityGroup(id); !ok || g.Deleted {
			p.add(fmt.Sprintf("%s.securityGroups[%d]", path, j), "unknown security group %q", id)
		}
	}
	switch l.Hook {
	case NoHook:
	case "":
		var outs []string
		for _, h := range w.LifecycleHooks {
			if h.Transition == world.ScaleOut {
				outs = append(outs, h.ID)
			}
		}
		switch len(outs) {
		case 0:
			l.Hook = NoHook
		case 1:
			l.Hook = outs[0]
		default:
			p.add(path+".hook", "the world has %d scale-out hooks (%s): name one, or %q", len(outs), strings.Join(outs, ", "), NoHook)
		}
	default:
		if h, ok := w.LifecycleHook(l.Hook); !ok {
			p.add(path+".hook", "unknown lifecycle hook %q", l.Hook)
		} else if h.Transition != world.ScaleOut {
			p.add(path+".hook", "hook %s is a %s hook; a launch needs a %s one", l.Hook, h.Transition, world.ScaleOut)
		}
	}
}

// validateSelect checks a selection.
func validateSelect(path string, s *Select, w *world.World, p *problems) {
	switch {
	case len(s.IDs) > 0 && (s.Count != 0 || s.From != "" || s.Pool != ""):
		p.add(path, "ids exclude count, from and pool")
	case len(s.IDs) == 0 && s.Count <= 0:
		p.add(path, "want ids, or a positive count (of from, pool or the whole world)")
	case s.From != "" && s.Pool != "":
		p.add(path, "from and pool exclude each other")
	}
	for j, id := range s.IDs {
		if !slices.ContainsFunc(w.Instances, func(in world.Instance) bool { return in.ID == id && !in.Released }) {
			p.add(fmt.Sprintf("%s.ids[%d]", path, j), "no instance %q in the world (launched instances are picked with from)", id)
		}
	}
	if s.Within < 0 {
		p.add(path+".within", "must not be negative")
	}
	if s.Within == 0 {
		s.Within = fault.Duration(DefaultWithin)
	}
}

// resolve makes path relative to dir unless it is absolute.
func resolve(dir, path string) string {
	if filepath.IsAbs(path) {
		return path
	}
	return filepath.Join(dir, path)
}

type problems []error

func (p *problems) add(path, format string, args ...any) {
	*p = append(*p, fmt.Errorf("%s: %s", path, fmt.Sprintf(format, args...)))
}

func (p problems) err() error {
	return errors.Join(p...)
}
