package engine

import (
	"testing"
	"testing/synctest"
	"time"

	"github.com/enipool/enipool/clock"
)

func TestClaims(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		clk := clock.Real()
		c := newClaims(time.Minute, clk)
		if !c.take("eni-1", "i-a", time.Time{}) {
			t.Fatal("a free ENI could not be claimed")
		}
		taken := clk.Now()
		time.Sleep(time.Second)
		tests := []struct {
			name     string
			instance string
			freeAsOf time.Time
			want     bool
		}{
			{"the claimant again", "i-a", time.Time{}, true},
			{"another instance, no read since the claim", "i-b", taken.Add(-time.Second), false},
			{"another instance, a read sent after the claim shows it free", "i-b", taken.Add(time.Millisecond), true},
		}
		for _, tt := range tests {
			if got := c.take("eni-1", tt.instance, tt.freeAsOf); got != tt.want {
				t.Errorf("%s: take = %v, want %v", tt.name, got, tt.want)
			}
			c.m["eni-1"] = claim{instance: "i-a", at: taken, until: taken.Add(time.Minute)}
		}
		time.Sleep(time.Minute)
		if !c.take("eni-1", "i-b", time.Time{}) {
			t.Error("an expired claim still blocks")
		}
	})
}
