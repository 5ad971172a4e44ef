package engine

import (
	"context"
	"sync"

	"github.com/enipool/enipool/cloud"
)

// typeCache keeps instance types for the life of the process: they do not change. Lookups of
// the same type at the same time share one call, so a burst of first invocations does not
// ask ECS for the same type over and over.
type typeCache struct {
	mu       sync.Mutex
	m        map[string]cloud.InstanceType
	inflight map[string]chan struct{}
}

func (c *typeCache) get(id string) (cloud.InstanceType, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	t, ok := c.m[id]
	return t, ok
}

// lookup makes sure the types are cached, calling fetch for those no one is fetching yet and
// waiting for the others.
func (c *typeCache) lookup(ctx context.Context, ids []string, fetch func(context.Context, []string) ([]cloud.InstanceType, error)) error {
	c.mu.Lock()
	if c.inflight == nil {
		c.inflight = map[string]chan struct{}{}
	}
	var mine []string
	var wait []chan struct{}
	for _, id := range ids {
		if _, ok := c.m[id]; ok {
			continue
		}
		if ch, ok := c.inflight[id]; ok {
			wait = append(wait, ch)
			continue
		}
		c.inflight[id] = make(chan struct{})
		mine = append(mine, id)
	}
	c.mu.Unlock()

	var err error
	if len(mine) > 0 {
		var got []cloud.InstanceType
		got, err = fetch(ctx, mine)
		c.mu.Lock()
		for _, t := range got {
			c.m[t.ID] = t
		}
		for _, id := range mine {
			close(c.inflight[id])
			delete(c.inflight, id)
		}
		c.mu.Unlock()
	}
	for _, ch := range wait {
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return err
}
