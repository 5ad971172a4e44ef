package handler

import (
	"bytes"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/enipool/enipool/cloud"
	"github.com/enipool/enipool/deadletter"
)

// letter is one dead letter and the items it stands for.
type letter struct {
	env   *deadletter.Envelope
	items []*item
}

// letters decides the dead letters of the dead-lettered items, their cost bounded by the
// carrier messages rather than by what a message claims to hold:
//   - the events of one carrier message that cannot be acted on at all (unreadable, or
//     asking what their channel may not) share one letter, which holds the message: a
//     message with 10,000 invalid ids is one letter, not 10,000;
//   - every other event gets its own letter, naming its instance, so that a redrive acts on
//     that instance alone;
//   - when that makes more than MaxDeadLetters, each carrier's letters fold into one holding
//     the whole message (a redrive then attaches every instance it names that still needs it).
func (h *Handler) letters(inv Invocation, todo []*item) []*letter {
	var out []*letter
	for _, run := range carriers(todo) {
		var refused, rest []*item
		for _, it := range run {
			if cannotAct(it) {
				refused = append(refused, it)
			} else {
				rest = append(rest, it)
			}
		}
		if len(refused) > 0 {
			out = append(out, h.fold(inv, refused))
		}
		for _, it := range rest {
			out = append(out, &letter{env: h.envelope(inv, it), items: []*item{it}})
		}
	}
	if len(out) <= h.opts.MaxDeadLetters {
		return out
	}
	out = out[:0]
	for _, run := range carriers(todo) {
		out = append(out, h.fold(inv, run))
	}
	return out
}

// carriers splits items into runs of consecutive items from one carrier message (Decode
// returns the events of one message together, sharing its bytes as Raw).
func carriers(items []*item) [][]*item {
	var runs [][]*item
	for i, it := range items {
		if i > 0 && bytes.Equal(it.req.Raw, items[i-1].req.Raw) {
			runs[len(runs)-1] = append(runs[len(runs)-1], it)
			continue
		}
		runs = append(runs, []*item{it})
	}
	return runs
}

// cannotAct reports an item that no redrive of its instance alone could help: an event that
// could not be read, or that asked what its channel may not.
func cannotAct(it *item) bool {
	if it.req.Err != nil {
		return true
	}
	var p *cloud.Problem
	return errors.As(it.err, &p) && (p.Code == cloud.CodeNotAllowed || p.Code == cloud.CodeForeign || p.Code == cloud.CodeReleaseRefused)
}

// fold makes one letter for the items of one carrier message: the first item's envelope,
// naming no instance (the whole message is the event), its reason counting what the items
// ended with.
func (h *Handler) fold(inv Invocation, items []*item) *letter {
	if len(items) == 1 {
		return &letter{env: h.envelope(inv, items[0]), items: items}
	}
	env := h.envelope(inv, items[0])
	env.InstanceID, env.Pool, env.Zone, env.VPCID = "", "", "", ""
	env.ENIsTried = []string{}
	codes := map[string]int{}
	for _, it := range items {
		codes[it.res.Code]++
	}
	var parts []string
	for c, n := range codes {
		parts = append(parts, fmt.Sprintf("%s ×%d", c, n))
	}
	sort.Strings(parts)
	env.Reason = fmt.Sprintf("%d events of one message dead-lettered together (%s); the first: %s",
		len(items), strings.Join(parts, ", "), items[0].res.Reason)
	env.Error.Message = env.Reason
	return &letter{env: env, items: items}
}
