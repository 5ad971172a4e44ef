package scenario

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/enipool/enipool/localcloud/world"
)

// baseWorld is a small valid world: one pool ENI per zone, a scale-out hook, two queues.
const baseWorld = `
world:
  account: {id: "1234567890123456", type: enterprise}
  regions: [{id: cn-hangzhou, zones: [cn-hangzhou-h, cn-hangzhou-i]}]
  vpcs: [{id: vpc-t1, region: cn-hangzhou, cidr: 10.0.0.0/16}]
  vswitches:
    - {id: vsw-th, vpc: vpc-t1, zone: cn-hangzhou-h, cidr: 10.0.1.0/24}
    - {id: vsw-ti, vpc: vpc-t1, zone: cn-hangzhou-i, cidr: 10.0.2.0/24}
  securityGroups: [{id: sg-t1, vpc: vpc-t1}]
  instanceTypes:
    - {id: ecs.t6-c1m1.large, family: ecs.t6, generation: ecs-6, eniQuantity: 2, eniPrivateIpAddressQuantity: 2, attachRequiresStopped: true}
    - {id: ecs.g7.large, family: ecs.g7, generation: ecs-6, eniQuantity: 3, eniPrivateIpAddressQuantity: 10}
  instances:
    - {id: i-t1, type: ecs.g7.large, vswitch: vsw-th, tags: {enipool: web}, securityGroups: [sg-t1]}
  enis:
    - {id: eni-th1, vswitch: vsw-ti, securityGroups: [sg-t1], tags: {enipool: web}}
  lifecycleHooks:
    - {id: ash-out, scalingGroupId: asg-1, transition: SCALE_OUT}
    - {id: ash-in, scalingGroupId: asg-1, transition: SCALE_IN}
  queues: [enipool-dlq, enipool-work]
`

func TestParseValid(t *testing.T) {
	sc, err := Parse([]byte(baseWorld+`
pools: [{pool: web, count: 3}]
timeline:
  - launch: {count: 4, pool: web, over: 2s, as: a}
  - stop: {count: 1, from: a}
  - start: {ids: [i-t1]}
  - release: {count: 1, pool: web, whileAttaching: true, within: 5s}
  - send: {queue: work, count: 2, body: '{"instanceId":"{{instance}}"}', from: a}
  - wait: 1s
end: {quiet: 10s}
`), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	l := sc.Timeline[0].Launch
	// The defaults come from the world: the first type that takes ENIs running, the pool's
	// vSwitches and security groups, the only scale-out hook.
	if l.Type != "ecs.g7.large" || strings.Join(l.VSwitches, ",") != "vsw-th,vsw-ti" || l.SecurityGroups[0] != "sg-t1" ||
		l.Hook != "ash-out" || l.Pending.D() != DefaultPending {
		t.Errorf("launch defaults: %+v", *l)
	}
	if got := len(sc.World.ENIs); got != 4 {
		t.Errorf("world ENIs with the pool: %d, want 1 + 3", got)
	}
	if sc.End.Deadline.D() != DefaultDeadline || sc.Timeline[1].Stop.Within.D() != DefaultWithin || sc.TagKey != "enipool" {
		t.Errorf("defaults: end %+v, within %s, tag key %q", sc.End, sc.Timeline[1].Stop.Within.D(), sc.TagKey)
	}
	if sc.Timeline[5].Wait.D() != time.Second {
		t.Errorf("wait: %s", sc.Timeline[5].Wait.D())
	}
}

func TestParseInvalid(t *testing.T) {
	const ok = "\ntimeline: [{wait: 1s}]\nend: {quiet: 1s}\n"
	tests := []struct {
		name, yaml string
		want       []string // each must appear in the error
	}{
		{"no world", "timeline: [{wait: 1s}]\nend: {quiet: 1s}\n", []string{"world: required"}},
		{"unknown field", baseWorld + ok + "speed: 2\n", []string{"field speed not found"}},
		{"bad world", strings.Replace(baseWorld, "vswitch: vsw-th,", "vswitch: vsw-x,", 1) + ok, []string{"world (inline)", "vsw-x"}},
		{"no timeline", baseWorld + "end: {quiet: 1s}\n", []string{"timeline: required"}},
		{"two kinds in a step", baseWorld + "timeline: [{wait: 1s, stop: {count: 1}}]\nend: {quiet: 1s}\n",
			[]string{"timeline[0]: want exactly one of launch, stop, start, release, send, wait; got 2"}},
		{"empty step", baseWorld + "timeline: [{}]\nend: {quiet: 1s}\n", []string{"timeline[0]: want exactly one"}},
		{"launch", baseWorld + "timeline: [{launch: {count: 0, over: -1s, type: ecs.x, vswitches: [vsw-x], hook: ash-in}}]\nend: {quiet: 1s}\n",
			[]string{"timeline[0].launch.count: must be positive, got 0", "timeline[0].launch.pool: required",
				"timeline[0].launch.over: must not be negative", `timeline[0].launch.type: unknown instance type "ecs.x"`,
				`timeline[0].launch.vswitches[0]: unknown vSwitch "vsw-x"`, "timeline[0].launch.hook: hook ash-in is a SCALE_IN hook"}},
		{"launch of a pool without ENIs", baseWorld + "timeline: [{launch: {count: 1, pool: db}}]\nend: {quiet: 1s}\n",
			[]string{`timeline[0].launch.vswitches: required: the world has no ENI of pool "db"`}},
		{"duplicate label", baseWorld + "timeline: [{launch: {count: 1, pool: web, as: a}}, {launch: {count: 1, pool: web, as: a}}]\nend: {quiet: 1s}\n",
			[]string{`timeline[1].launch.as: label "a" is used by an earlier launch`}},
		{"label before its launch", baseWorld + "timeline: [{stop: {count: 1, from: a}}, {launch: {count: 1, pool: web, as: a}}]\nend: {quiet: 1s}\n",
			[]string{`timeline[0].stop.from: no earlier launch step is labelled "a"`}},
		{"select", baseWorld + "timeline: [{stop: {}}, {start: {ids: [i-t1], count: 1}}, {release: {ids: [i-nope]}}, {stop: {count: 1, from: a, pool: web}}]\nend: {quiet: 1s}\n",
			[]string{"timeline[0].stop: want ids, or a positive count", "timeline[1].start: ids exclude count, from and pool",
				`timeline[2].release.ids[0]: no instance "i-nope"`, "timeline[3].stop: from and pool exclude each other"}},
		{"send", baseWorld + "timeline: [{send: {queue: nope, count: 0}}, {send: {count: 1, body: x}}]\nend: {quiet: 1s}\n",
			[]string{`timeline[0].send.queue: unknown queue "nope"`, "timeline[0].send.count: must be positive",
				"timeline[0].send.body: required", "timeline[1].send.queue: required"}},
		{"wait", baseWorld + "timeline: [{wait: 0s}]\nend: {quiet: 1s}\n", []string{"timeline[0].wait: must be positive"}},
		{"bad duration", baseWorld + "timeline: [{wait: soon}]\nend: {quiet: 1s}\n", []string{"soon"}},
		{"no end", baseWorld + "timeline: [{wait: 1s}]\n", []string{"end: required: quiet, deadline or both"}},
		{"quiet past the deadline", baseWorld + "timeline: [{wait: 1s}]\nend: {quiet: 1m, deadline: 30s}\n",
			[]string{"end.quiet: 1m0s can never pass before the deadline 30s"}},
		{"pools", baseWorld + ok + "pools: [{count: 0, vswitches: [vsw-x], securityGroups: [sg-x]}]\n",
			[]string{"pools[0].pool: required", "pools[0].count: must be positive", `pools[0].vswitches[0]: unknown vSwitch "vsw-x"`,
				`pools[0].securityGroups[0]: unknown security group "sg-x"`}},
		{"fc and bus", baseWorld + ok + "fc: {maxInstances: -1, idleTimeout: -1s}\nbus: {minDelay: 2s, maxDelay: 1s, duplicates: 2}\n",
			[]string{"fc.maxInstances: must not be negative", "fc.idleTimeout: must not be negative", "bus: want 0 <= minDelay <= maxDelay", "bus.duplicates: a probability"}},
		{"missing world file", "world: nope.yaml\n" + ok, []string{"nope.yaml"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.yaml), t.TempDir())
			if err == nil {
				t.Fatal("accepted")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error lacks %q:\n%v", w, err)
				}
			}
		})
	}
}

// The shipped scenarios and the test's own must load.
func TestShippedScenariosLoad(t *testing.T) {
	files, _ := filepath.Glob("../../../localcloud/scenarios/*.yaml")
	files = append(files, "testdata/small.yaml")
	if len(files) < 2 {
		t.Fatalf("found %v", files)
	}
	for _, f := range files {
		sc, err := Load(f)
		if err != nil {
			t.Errorf("%s: %v", f, err)
			continue
		}
		if _, err := os.Stat(sc.Project); err != nil {
			t.Errorf("%s: project: %v", f, err)
		}
	}
}

// The shipped scenarios run on the demo world's knobs (production's unkindness): their worlds must keep in step with
// localcloud/worlds/demo.yaml (and scaleout-200's inline world with worlds/fleet.yaml).
func TestShippedScenariosAreRealistic(t *testing.T) {
	real, err := world.Load("../../../localcloud/worlds/demo.yaml")
	if err != nil {
		t.Fatal(err)
	}
	fleet, err := world.Load("../../../localcloud/scenarios/worlds/fleet.yaml")
	if err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob("../../../localcloud/scenarios/*.yaml")
	for _, f := range files {
		sc, err := Load(f)
		if err != nil {
			t.Fatal(err)
		}
		w := sc.World
		if !reflect.DeepEqual(w.Faults, real.Faults) || !reflect.DeepEqual(w.Timing, real.Timing) || !reflect.DeepEqual(w.Throttling, real.Throttling) {
			t.Errorf("%s: faults, timing or throttling differ from demo.yaml's", f)
		}
		// Policy files are named relative to each file: compare what they say.
		p, _ := w.Policy("enipool-fn")
		fp, _ := fleet.Policy("enipool-fn")
		if !reflect.DeepEqual(w.VSwitches, fleet.VSwitches) || !reflect.DeepEqual(w.LifecycleHooks, fleet.LifecycleHooks) ||
			p == nil || !reflect.DeepEqual(p, fp) || len(w.Instances) != 0 {
			t.Errorf("%s: the network, hook or policy differ from worlds/fleet.yaml's, or it has instances", f)
		}
	}
}
