package handler

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"sort"
	"strings"
	"unicode/utf8"

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
//     the whole message (a redrive then attaches every instance it names that still needs it);
//   - when there are still more carrier messages than MaxDeadLetters (a work-queue batch of
//     100 unreadable messages), those past the first MaxDeadLetters-1 share the last letter,
//     whose event is a JSON array of their raw events (see overflow; the last two letters when
//     unreadable messages and messages with work to redo are packed apart). Nothing is left
//     to the platform's retry, which would send the same letters again and run the batch's
//     good events again; only when the messages' bytes do not fit one MNS message do the
//     letters outnumber MaxDeadLetters, by one per 64 KiB.
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
	runs := carriers(todo)
	out = out[:0]
	if len(runs) <= h.opts.MaxDeadLetters {
		for _, run := range runs {
			out = append(out, h.fold(inv, run))
		}
		return out
	}
	// The overflow takes the last letter, or the last two when it holds both messages that
	// cannot be acted on and messages with work to redo (see overflow).
	keep := h.opts.MaxDeadLetters - 1
	apart := keep > 0 && slices.ContainsFunc(runs[keep:], stuck) && slices.ContainsFunc(runs[keep:], func(run []*item) bool { return !stuck(run) })
	if apart {
		keep--
	}
	for _, run := range runs[:keep] {
		out = append(out, h.fold(inv, run))
	}
	return append(out, h.overflow(inv, runs[keep:], apart)...)
}

// stuck reports a carrier message none of whose events can be acted on.
func stuck(run []*item) bool {
	return !slices.ContainsFunc(run, func(it *item) bool { return !cannotAct(it) })
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
	env.Reason = fmt.Sprintf("%d events of one message dead-lettered together (%s); the first: %s",
		len(items), countCodes(codes), items[0].res.Reason)
	env.Error.Message = env.Reason
	return &letter{env: env, items: items}
}

// overflow makes the letters of the carrier messages past the invocation's other letters: as
// few as fit their raw events, each letter's event a JSON array of them, which Decode reads
// back as a batch. A raw event that is a JSON object goes in as it is, so a redrive decodes it
// exactly as the first time; anything else goes in as a JSON string, which Decode reads as the
// event it holds (invalid UTF-8 becomes U+FFFD: such a message was unreadable anyway). With
// apart, the messages none of whose events could be acted on are packed apart from the
// others, so that a letter with work to redo is not quarantined for an unreadable neighbour.
// A message too large to share a letter gets one of its own, cut to fit as any letter is
// (deadletter.Marshal).
func (h *Handler) overflow(inv Invocation, runs [][]*item, apart bool) []*letter {
	groups := [][][]*item{runs}
	if apart {
		var poison, rest [][]*item
		for _, run := range runs {
			if stuck(run) {
				poison = append(poison, run)
			} else {
				rest = append(rest, run)
			}
		}
		groups = [][][]*item{poison, rest}
	}
	// Every letter's envelope but its event is at most as long as that of a letter holding
	// them all: its reason's counts and codes are a part of theirs.
	room := deadletter.MaxMessageBytes - h.overflowEnvelopeSize(inv, runs)
	var out []*letter
	for _, group := range groups {
		var pack [][]*item
		var elems [][]byte
		used := len("[]")
		flush := func() {
			switch len(pack) {
			case 0:
			case 1:
				out = append(out, h.fold(inv, pack[0]))
			default:
				out = append(out, h.overflowLetters(inv, pack, elems)...)
			}
			pack, elems, used = nil, nil, len("[]")
		}
		for _, run := range group {
			el := arrayElement(run[0].req.Raw)
			n := escapedLen(el)
			if len(pack) > 0 {
				n++ // the comma
			}
			if len(pack) > 0 && used+n > room {
				flush()
				n = escapedLen(el)
			}
			pack, elems, used = append(pack, run), append(elems, el), used+n
		}
		flush()
	}
	return out
}

// overflowEnvelopeSize is the size of the overflow letter of all runs with an empty array
// for its event, and a margin for what varies between letters: the digits of the event's
// size, and the first item's code and verdict (overflowLetters checks each letter).
func (h *Handler) overflowEnvelopeSize(inv Invocation, runs [][]*item) int {
	const margin = 128
	env := h.overflowEnvelope(inv, runs)
	env.Event = []byte("[]")
	b, err := deadletter.Marshal(env)
	if err != nil {
		return deadletter.MaxMessageBytes // only a reason beyond 64 KiB: one letter per message
	}
	return len(b) + margin
}

// overflowLetters is the letter of several carrier messages whose raw events are elems, or,
// should it not fit one message after all (the envelopes of its messages differ from the
// first's in more than the margin), the letters of its halves.
func (h *Handler) overflowLetters(inv Invocation, runs [][]*item, elems [][]byte) []*letter {
	if len(runs) == 1 {
		return []*letter{h.fold(inv, runs[0])}
	}
	env := h.overflowEnvelope(inv, runs)
	env.Event = append(append([]byte("["), bytes.Join(elems, []byte(","))...), ']')
	if b, err := deadletter.MarshalLimit(env, math.MaxInt); err != nil || len(b) > deadletter.MaxMessageBytes {
		half := len(runs) / 2
		return append(h.overflowLetters(inv, runs[:half], elems[:half]), h.overflowLetters(inv, runs[half:], elems[half:])...)
	}
	var items []*item
	for _, run := range runs {
		items = append(items, run...)
	}
	return []*letter{{env: env, items: items}}
}

// overflowEnvelope is the envelope of the overflow letter of runs, without its event: naming
// no instance and no event id (it holds several messages), its reason counting them and
// what their events ended with.
func (h *Handler) overflowEnvelope(inv Invocation, runs [][]*item) *deadletter.Envelope {
	first := runs[0][0]
	env := h.envelope(inv, first)
	env.InstanceID, env.Pool, env.Zone, env.VPCID, env.EventID = "", "", "", "", ""
	env.ENIsTried = []string{}
	env.Attempts = 0
	events := 0
	codes := map[string]int{}
	for _, run := range runs {
		for _, it := range run {
			events++
			codes[it.res.Code]++
		}
	}
	env.Reason = fmt.Sprintf("%d messages past the invocation's %d dead letters (ENIPOOL_MAX_DEAD_LETTERS) share this letter: its event is a JSON array of their raw events, %d event(s) in all (%s)",
		len(runs), h.opts.MaxDeadLetters, events, countCodes(codes))
	env.Error = &deadletter.Error{Code: first.res.Code, Message: env.Reason}
	return env
}

// countCodes lists codes and their counts, sorted: "code ×n, ...".
func countCodes(codes map[string]int) string {
	var parts []string
	for c, n := range codes {
		parts = append(parts, fmt.Sprintf("%s ×%d", c, n))
	}
	sort.Strings(parts)
	return strings.Join(parts, ", ")
}

// arrayElement is a raw event as an element of an overflow letter's array: a JSON object as it
// is, anything else as a JSON string holding it.
func arrayElement(raw []byte) []byte {
	t := bytes.TrimSpace(raw)
	if len(t) > 0 && t[0] == '{' && utf8.Valid(t) && json.Valid(t) {
		return t
	}
	b, _ := json.Marshal(string(raw)) // a string always encodes
	return b
}

// escapedLen is how many bytes b takes inside a JSON string as deadletter.Marshal writes the
// event (no HTML escaping). encoding/json escapes each rune on its own, so the lengths of the
// parts of a text add up to the length of the text.
func escapedLen(b []byte) int {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(string(b)) // a string always encodes
	return buf.Len() - len("\"\"\n")
}
