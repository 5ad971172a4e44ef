package engine

import (
	"fmt"
	"testing"

	"github.com/enipool/enipool/cloud"
)

func TestRankIsStableAndSpreads(t *testing.T) {
	var pool []cloud.ENI
	for i := range 100 {
		pool = append(pool, cloud.ENI{ID: fmt.Sprintf("eni-%03d", i)})
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
