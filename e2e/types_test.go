package e2e

import (
	"fmt"
	"strings"
	"testing"

	"github.com/enipool/enipool/engine"
	"github.com/enipool/enipool/localcloud/world"
)

// A batch of 12 instances of 12 instance types: the local cloud, like ECS, takes 1 to 10
// types per DescribeInstanceTypes. Fails on ca38816: "12 dead letters InvalidParameter".
func TestBatchOfManyInstanceTypes(t *testing.T) {
	t.Parallel()
	var ids, quoted []string
	var insts []world.Instance
	var types []world.InstanceType
	for i := range 12 {
		typ := fmt.Sprintf("ecs.g7.t%02d", i)
		types = append(types, world.InstanceType{ID: typ, Family: "ecs.g7", Generation: "ecs-6", ENIQuantity: 3, ENIPrivateIPQuantity: 10})
		in := inst(fmt.Sprintf("i-bp1types%07d", i), zoneH)
		in.Type = typ
		insts = append(insts, in)
		ids = append(ids, in.ID)
		quoted = append(quoted, fmt.Sprintf("%q", in.ID))
	}
	w := newWorld(t, spec{instances: insts, enis: poolENIs("y", zoneH, 12),
		mutate: func(w *world.World) { w.InstanceTypes = append(w.InstanceTypes, types...) }})
	b := newBed(t, w, bedOptions{})
	resp := b.mustInvoke(fmt.Sprintf(`{"instanceIds":[%s],"regionId":%q}`, strings.Join(quoted, ","), region))
	for _, id := range ids {
		if r := result(t, resp, id); r.Outcome != engine.OutcomeAttached {
			t.Errorf("%s: %s %s (%s)", id, r.Outcome, r.Code, r.Reason)
		}
		if got := b.inUse(id); len(got) != 1 {
			t.Errorf("%s holds %v", id, got)
		}
	}
	if dl := b.deadLetters(); len(dl) != 0 {
		t.Errorf("%d dead letters, first %s: %s", len(dl), dl[0].Error.Code, dl[0].Reason)
	}
	if n := b.calls("ecs", "DescribeInstanceTypes"); n < 2 {
		t.Errorf("%d DescribeInstanceTypes calls for 12 types, want them split", n)
	}
}
