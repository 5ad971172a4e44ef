package engine

import (
	"hash/fnv"
	"sort"

	"github.com/enipool/enipool/cloud"
)

// rank orders candidate ENIs by rendezvous (highest random weight) hashing of (key, ENI id):
// every invocation that handles the same instance ranks the pool the same way, so duplicates
// of one event go for the same ENI and the attach call itself settles who wins, while
// different instances spread over the pool.
func rank(key string, enis []cloud.ENI) []cloud.ENI {
	out := append([]cloud.ENI(nil), enis...)
	sort.SliceStable(out, func(i, j int) bool {
		si, sj := score(key, out[i].ID), score(key, out[j].ID)
		if si != sj {
			return si > sj
		}
		return out[i].ID < out[j].ID
	})
	return out
}

// Rank returns eniIDs in the order the handler tries them for an instance. The order is
// rendezvous hashing of (instance, ENI): stable as the pool grows or shrinks, so an instance
// that comes back (stop/start, or a replacement with the same id) tends to get the same ENI,
// and its IP, again.
func Rank(instanceID string, eniIDs []string) []string {
	enis := make([]cloud.ENI, len(eniIDs))
	for i, id := range eniIDs {
		enis[i] = cloud.ENI{ID: id}
	}
	out := make([]string, len(eniIDs))
	for i, e := range rank(instanceID, enis) {
		out[i] = e.ID
	}
	return out
}

func score(key, id string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(key))
	h.Write([]byte{0})
	h.Write([]byte(id))
	// FNV's low bits mix poorly on similar ids; a finalizer spreads them.
	x := h.Sum64()
	x ^= x >> 33
	x *= 0xff51afd7ed558ccd
	x ^= x >> 33
	x *= 0xc4ceb9fe1a85ec53
	x ^= x >> 33
	return x
}
