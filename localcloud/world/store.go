package world

import (
	"crypto/sha1"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"net/netip"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/enipool/enipool/localcloud/fault"
)

// Store is the live state of a world: its instances and ENIs, changed by the emulated
// services. It is safe for concurrent use.
//
// Asynchronous changes (Attaching -> InUse or back to Available on a rollback, Detaching ->
// Available) are recorded as a Transition with a due time and applied lazily, under the
// lock, at the start of every View and Update. No goroutine or timer runs, and every read
// sees the state as of its own clock reading.
type Store struct {
	w     *World
	clock func() time.Time

	mu sync.Mutex
	st *State
}

// State is the mutable world as of one clock reading. It is only valid inside the View or
// Update callback that received it.
type State struct {
	world *World
	now   time.Time
	rng   *rand.Rand

	// Instances and ENIs by id, tombstones (released instances) included.
	Instances map[string]*Instance
	ENIs      map[string]*ENI

	pending     map[string]*ENI                  // ENIs with a Transition
	pendingInst map[string]*Instance             // instances with a Transition
	used        map[string]map[netip.Addr]string // vSwitch -> address -> owner id
	free        map[string]int                   // vSwitch -> addresses left, for capped vSwitches
	cursor      map[string]netip.Addr            // vSwitch -> where the next allocation search starts

	// History for lagging reads: the versions each object had before its recent changes,
	// oldest first, each valid until the change that replaced it. keep bounds how long a
	// version is kept after it was replaced; 0 keeps nothing (no lagging reads).
	keep     time.Duration
	pastENI  map[string][]version[ENI]
	pastInst map[string][]version[Instance]
	pastQ    []pastRef // every recorded version, in recording order, for pruning

	// Status changes, in the order applied, for drivers emitting state-change events.
	changes []Change

	// Asynchronous operations and their true durations, for harnesses computing floors.
	ops    []Operation
	openOp map[string]int // ENI id -> index in ops of its unfinished operation
	nOps   map[string]uint64
}

// version is an object as it was until a change replaced it; v nil means it did not exist.
type version[T any] struct {
	until time.Time
	v     *T
}

type pastRef struct {
	until time.Time
	eni   bool
	id    string
}

// Operation is one asynchronous ENI operation (an attach or a detach) and how long it
// really took, from the moment ECS accepted it to the moment it ended.
type Operation struct {
	// Op is "attach" or "detach".
	Op       string `json:"op"`
	ENI      string `json:"eni"`
	Instance string `json:"instance"`
	// Accepted is when the call was accepted (the ENI became Attaching or Detaching).
	Accepted time.Time `json:"accepted"`
	// Due is when the operation is to end, Accepted plus the drawn duration.
	Due time.Time `json:"due"`
	// Duration is Due - Accepted: the operation's true duration.
	Duration time.Duration `json:"durationNs"`
	// Outcome is how it ended: InUse or RolledBack for an attach, Available for a detach,
	// Released when the instance was released first; empty while it runs.
	Outcome string `json:"outcome,omitempty"`
	// Ended is when it ended (Due, or the release).
	Ended time.Time `json:"ended,omitzero"`
}

// Operation outcomes besides the statuses.
const (
	OutcomeRolledBack = "RolledBack"
	OutcomeReleased   = "Released"
)

// NewStore builds the live state of w as of clock() (nil means time.Now): relative
// timestamps are resolved, primary ENIs created for instances that list none, and missing
// addresses and MACs allocated. w must have been validated.
func NewStore(w *World, clock func() time.Time) (*Store, error) {
	if w.regions == nil {
		return nil, errors.New("world: NewStore needs a validated world")
	}
	if clock == nil {
		clock = time.Now
	}
	now := clock()
	st := &State{
		world:     w,
		now:       now,
		rng:       rand.New(rand.NewPCG(uint64(w.Faults.Seed), 0x9e3779b97f4a7c15)),
		Instances: make(map[string]*Instance, len(w.Instances)),
		ENIs:      make(map[string]*ENI, len(w.ENIs)+len(w.Instances)),
		pending:   map[string]*ENI{},
		used:      map[string]map[netip.Addr]string{},
		keep:      w.Faults.MaxStaleness(),
		pastENI:   map[string][]version[ENI]{},
		pastInst:  map[string][]version[Instance]{},
		openOp:    map[string]int{},
		nOps:      map[string]uint64{},

		pendingInst: map[string]*Instance{},
		free:        map[string]int{},
		cursor:      map[string]netip.Addr{},
	}
	for _, in := range w.Instances {
		c := in.clone()
		c.StartTime = At(in.StartTime.Resolve(now))
		c.CreationTime = At(in.CreationTime.Resolve(now))
		if c.CreationTime.abs.After(c.StartTime.abs) {
			c.CreationTime = c.StartTime
		}
		st.Instances[c.ID] = c
	}
	for _, e := range w.ENIs {
		c := e.clone()
		c.CreationTime = At(e.CreationTime.Resolve(now))
		st.ENIs[c.ID] = c
	}
	if err := st.linkPrimaries(); err != nil {
		return nil, err
	}
	if err := st.allocateAtLoad(); err != nil {
		return nil, err
	}
	// availableIps counts what is left after the world's own addresses.
	for _, sw := range w.VSwitches {
		if sw.AvailableIPs != nil {
			st.free[sw.ID] = *sw.AvailableIPs
		}
	}
	return &Store{w: w, clock: clock, st: st}, nil
}

// linkPrimaries gives every instance exactly one primary ENI.
func (st *State) linkPrimaries() error {
	primaries := map[string]*ENI{}
	for _, id := range sortedKeys(st.ENIs) {
		e := st.ENIs[id]
		if e.Type != ENIPrimary {
			continue
		}
		if _, dup := primaries[e.InstanceID]; dup {
			return fmt.Errorf("world: instance %s has two primary ENIs", e.InstanceID)
		}
		primaries[e.InstanceID] = e
	}
	for _, id := range sortedKeys(st.Instances) {
		in := st.Instances[id]
		if e, ok := primaries[id]; ok {
			if in.PrimaryENI != "" && in.PrimaryENI != e.ID {
				return fmt.Errorf("world: instance %s names primary ENI %s but %s is listed as its primary", id, in.PrimaryENI, e.ID)
			}
			in.PrimaryENI = e.ID
			if in.PrivateIP != "" && len(e.PrivateIPs) == 0 {
				e.PrivateIPs = []string{in.PrivateIP}
			}
			continue
		}
		if in.Released {
			continue // a released instance's primary ENI was released with it
		}
		if in.PrimaryENI == "" {
			sum := sha1.Sum([]byte(id))
			in.PrimaryENI = "eni-" + hex.EncodeToString(sum[:])[:20]
		}
		if _, taken := st.ENIs[in.PrimaryENI]; taken {
			return fmt.Errorf("world: instance %s: primary ENI id %s is already a secondary ENI", id, in.PrimaryENI)
		}
		e := &ENI{
			ID:             in.PrimaryENI,
			VSwitch:        in.VSwitch,
			SecurityGroups: slices.Clone(in.SecurityGroups),
			Type:           ENIPrimary,
			Status:         ENIInUse,
			InstanceID:     id,
			CreationTime:   in.CreationTime,
			OwnerID:        in.OwnerID,
		}
		if in.PrivateIP != "" {
			e.PrivateIPs = []string{in.PrivateIP}
		}
		st.ENIs[e.ID] = e
	}
	return nil
}

// allocateAtLoad reserves listed addresses, then allocates the missing ones in id order so
// the same world always gets the same addresses.
func (st *State) allocateAtLoad() error {
	ids := sortedKeys(st.ENIs)
	for _, id := range ids {
		e := st.ENIs[id]
		for _, ip := range e.PrivateIPs {
			a := netip.MustParseAddr(ip)
			if owner, taken := st.usedIn(e.VSwitch)[a]; taken {
				return fmt.Errorf("world: address %s is on both %s and %s", ip, owner, e.ID)
			}
			st.usedIn(e.VSwitch)[a] = e.ID
		}
	}
	for _, id := range ids {
		e := st.ENIs[id]
		if len(e.PrivateIPs) == 0 {
			ip, err := st.AllocateIP(e.VSwitch, e.ID)
			if err != nil {
				return fmt.Errorf("world: ENI %s: %w", e.ID, err)
			}
			e.PrivateIPs = []string{ip}
		}
		if e.MAC == "" {
			e.MAC = MACFor(e.ID)
		}
		if e.Type == ENIPrimary || e.Status == ENIInUse {
			if in, ok := st.Instances[e.InstanceID]; ok && e.Type == ENIPrimary {
				in.PrivateIP = e.PrivateIPs[0]
			}
		}
	}
	for _, id := range sortedKeys(st.Instances) {
		next := 1
		for _, e := range st.Attached(id) {
			if e.Type != ENIPrimary {
				e.DeviceIndex = next
				next++
			}
		}
	}
	return nil
}

// MACFor derives a stable Alibaba-style MAC address (OUI 00:16:3e) from an ENI id.
func MACFor(id string) string {
	sum := sha1.Sum([]byte(id))
	return fmt.Sprintf("00:16:3e:%02x:%02x:%02x", sum[0], sum[1], sum[2])
}

func sortedKeys[V any](m map[string]V) []string {
	keys := slices.Collect(maps.Keys(m))
	sort.Strings(keys)
	return keys
}

// World returns the static world the store was built from.
func (s *Store) World() *World { return s.w }

// Now reads the store's clock.
func (s *Store) Now() time.Time { return s.clock() }

// View runs fn on the current state. fn must not keep the state or its pointers.
func (s *Store) View(fn func(*State)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.settle()
	fn(s.st)
}

// Update runs fn on the current state; fn changes it in place. Changes made before fn
// returns an error are kept, so fn should check before it mutates. State's methods keep
// the history lagging reads use; a change made by hand (a field set directly) should call
// State.Touch first, or lagging reads see it at once.
func (s *Store) Update(fn func(*State) error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.settle()
	return fn(s.st)
}

// settle applies every transition that is due, oldest first, each as of its own due time
// (so the history lagging reads use has the true change times). The caller holds s.mu.
func (s *Store) settle() {
	st := s.st
	now := s.clock()
	st.now = now
	type due struct {
		at  time.Time
		eni *ENI
		in  *Instance
	}
	var ds []due
	for id, e := range st.pending {
		switch {
		case e.Transition == nil:
			delete(st.pending, id)
		case !now.Before(e.Transition.At):
			ds = append(ds, due{at: e.Transition.At, eni: e})
		}
	}
	for id, in := range st.pendingInst {
		switch {
		case in.Transition == nil:
			delete(st.pendingInst, id)
		case !now.Before(in.Transition.At):
			ds = append(ds, due{at: in.Transition.At, in: in})
		}
	}
	sort.Slice(ds, func(i, j int) bool {
		if !ds[i].at.Equal(ds[j].at) {
			return ds[i].at.Before(ds[j].at)
		}
		return ds[i].eni != nil && ds[j].eni == nil
	})
	for _, d := range ds {
		if in := d.in; in != nil {
			// A chain of changes (Pending -> Starting -> Running) applies as far as now.
			for in.Transition != nil && !now.Before(in.Transition.At) {
				tr := in.Transition
				st.rememberInstance(in.ID, tr.At)
				st.change(KindInstance, in.ID, in.ID, in.Status, tr.To, tr.At)
				in.Status = tr.To
				if in.Status == StatusRunning {
					in.StartTime = At(tr.At)
				}
				in.Transition = tr.Then
			}
			if in.Transition == nil {
				delete(st.pendingInst, in.ID)
			}
			continue
		}
		e := d.eni
		st.rememberENI(e.ID, d.at)
		st.change(KindENI, e.ID, e.InstanceID, e.Status, e.Transition.To, d.at)
		e.Status = e.Transition.To
		outcome := e.Status
		if e.Transition.Rollback {
			outcome = OutcomeRolledBack
		}
		if e.Status == ENIAvailable {
			e.InstanceID = ""
			e.DeviceIndex = 0
			e.NetworkCardIndex = 0
			e.AttachedAt = time.Time{}
		}
		e.Transition = nil
		delete(st.pending, e.ID)
		st.endOp(e.ID, outcome, d.at)
	}
	st.prune()
}

// Now is the time of this state.
func (st *State) Now() time.Time { return st.now }

// World is the static world.
func (st *State) World() *World { return st.world }

// InstanceVPC returns the VPC of an instance (through its vSwitch).
func (st *State) InstanceVPC(in *Instance) string {
	if sw, ok := st.world.VSwitch(in.VSwitch); ok {
		return sw.VPC
	}
	return ""
}

// ENIVPCZone returns the VPC and zone of an ENI (through its vSwitch).
func (st *State) ENIVPCZone(e *ENI) (vpc, zone string) {
	if sw, ok := st.world.VSwitch(e.VSwitch); ok {
		return sw.VPC, sw.Zone
	}
	return "", ""
}

// Attached returns the ENIs bound to an instance (Attaching, InUse or Detaching, the
// primary included), by device index.
func (st *State) Attached(instanceID string) []*ENI {
	var out []*ENI
	for _, e := range st.ENIs {
		if e.InstanceID == instanceID && (e.Status == ENIAttaching || e.Status == ENIInUse || e.Status == ENIDetaching) {
			out = append(out, e)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].DeviceIndex != out[j].DeviceIndex {
			return out[i].DeviceIndex < out[j].DeviceIndex
		}
		return out[i].ID < out[j].ID
	})
	return out
}

// SecurityGroupMembers returns the instances in a security group: those listing it and
// those with a bound ENI in it.
func (st *State) SecurityGroupMembers(groupID string) map[string]bool {
	out := map[string]bool{}
	for _, in := range st.Instances {
		if !in.Released && slices.Contains(in.SecurityGroups, groupID) {
			out[in.ID] = true
		}
	}
	for _, e := range st.ENIs {
		if e.InstanceID != "" && slices.Contains(e.SecurityGroups, groupID) {
			out[e.InstanceID] = true
		}
	}
	return out
}

// Attach starts an attachment: the ENI becomes Attaching on the instance at once and, when
// the world's attach time (plus jitter) has passed, InUse, or Available again when
// rollback is set.
func (st *State) Attach(e *ENI, in *Instance, networkCard int, rollback bool) {
	used := map[int]bool{}
	for _, a := range st.Attached(in.ID) {
		used[a.DeviceIndex] = true
	}
	idx := 1
	for used[idx] {
		idx++
	}
	st.rememberENI(e.ID, st.now)
	st.change(KindENI, e.ID, in.ID, e.Status, ENIAttaching, st.now)
	e.Status = ENIAttaching
	e.InstanceID = in.ID
	e.DeviceIndex = idx
	e.NetworkCardIndex = networkCard
	e.AttachedAt = st.now
	to := ENIInUse
	if rollback {
		to = ENIAvailable
	}
	d := st.duration("attach", st.world.Timing.Attach, st.world.Timing.AttachSpread)
	e.Transition = &Transition{To: to, At: st.now.Add(d), Rollback: rollback}
	st.pending[e.ID] = e
	st.startOp("attach", e, d)
}

// Detach starts a detachment: Detaching now, Available after the world's detach time.
func (st *State) Detach(e *ENI) {
	st.rememberENI(e.ID, st.now)
	st.change(KindENI, e.ID, e.InstanceID, e.Status, ENIDetaching, st.now)
	e.Status = ENIDetaching
	d := st.duration("detach", st.world.Timing.Detach, st.world.Timing.DetachSpread)
	e.Transition = &Transition{To: ENIAvailable, At: st.now.Add(d)}
	st.pending[e.ID] = e
	st.startOp("detach", e, d)
}

// duration draws how long the next operation op takes: from the spread when the world
// sets one (seeded by faults.seed and the operation's index, so the n-th attach of a run
// takes as long in every run), else the fixed time plus jitter as before.
func (st *State) duration(op string, fixed fault.Duration, spread fault.Spread) time.Duration {
	n := st.nOps[op]
	st.nOps[op] = n + 1
	if !spread.IsZero() {
		return spread.Quantile(fault.Uniform(st.world.Faults.Seed, fmt.Sprintf("world/%s|%d", op, n)))
	}
	return fixed.D() + st.jitter()
}

func (st *State) startOp(op string, e *ENI, d time.Duration) {
	if i, open := st.openOp[e.ID]; open {
		// A new operation on the same ENI replaces one that never ended (cannot happen
		// through the API, which waits for Available or InUse; kept safe for scenarios).
		st.ops[i].Outcome, st.ops[i].Ended = "Superseded", st.now
	}
	st.openOp[e.ID] = len(st.ops)
	st.ops = append(st.ops, Operation{Op: op, ENI: e.ID, Instance: e.InstanceID, Accepted: st.now,
		Due: st.now.Add(d), Duration: d})
}

func (st *State) endOp(eni, outcome string, at time.Time) {
	if i, open := st.openOp[eni]; open {
		st.ops[i].Outcome, st.ops[i].Ended = outcome, at
		delete(st.openOp, eni)
	}
}

// Touch records the current version of an instance or ENI (by id) as history, valid
// until now, before the caller changes it in place, so lagging reads still see the old
// version for a while. State's own methods do it themselves; call it for any other change
// made inside Update (tags, a status set by hand).
func (st *State) Touch(id string) {
	if IsENIID(id) {
		st.rememberENI(id, st.now)
	} else {
		st.rememberInstance(id, st.now)
	}
}

func (st *State) rememberENI(id string, until time.Time) {
	if st.keep > 0 {
		remember(st.pastENI, st.ENIs, id, until, (*ENI).clone)
		st.pastQ = append(st.pastQ, pastRef{until: until, eni: true, id: id})
	}
}

func (st *State) rememberInstance(id string, until time.Time) {
	if st.keep > 0 {
		remember(st.pastInst, st.Instances, id, until, (*Instance).clone)
		st.pastQ = append(st.pastQ, pastRef{until: until, eni: false, id: id})
	}
}

// remember appends live[id] as it is now (nil when it does not exist) to its past versions.
func remember[T any](past map[string][]version[T], live map[string]*T, id string, until time.Time, clone func(*T) *T) {
	var v *T
	if x, ok := live[id]; ok {
		v = clone(x)
	}
	past[id] = append(past[id], version[T]{until: until, v: v})
}

// prune forgets versions replaced longer than keep ago: no read lags that far.
func (st *State) prune() {
	cut := st.now.Add(-st.keep)
	n := 0
	for _, r := range st.pastQ {
		if !r.until.Before(cut) {
			break
		}
		n++
		if r.eni {
			dropFirst(st.pastENI, r.id)
		} else {
			dropFirst(st.pastInst, r.id)
		}
	}
	// Re-slicing lets append move the queue to a fresh array once the front is spent.
	st.pastQ = st.pastQ[n:]
}

// dropFirst removes the oldest version of id and deletes the entry when none is left.
func dropFirst[T any](m map[string][]version[T], id string) {
	vs := m[id]
	if len(vs) <= 1 {
		delete(m, id)
		return
	}
	m[id] = vs[1:]
}

func (st *State) jitter() time.Duration {
	j := st.world.Timing.Jitter.D()
	if j <= 0 {
		return 0
	}
	return time.Duration(st.rng.Int64N(int64(j)))
}

// ErrNoAddress is returned by AllocateIP when a vSwitch has no free address left.
var ErrNoAddress = errors.New("no free IP address in the vSwitch")

func (st *State) usedIn(vsw string) map[netip.Addr]string {
	m := st.used[vsw]
	if m == nil {
		m = map[netip.Addr]string{}
		st.used[vsw] = m
	}
	return m
}

// AllocateIP takes the next free IPv4 address of a vSwitch for owner (an ENI id). As on
// Alibaba Cloud the first address and the last three of the CIDR block are reserved.
func (st *State) AllocateIP(vsw, owner string) (string, error) {
	sw, ok := st.world.VSwitch(vsw)
	if !ok {
		return "", fmt.Errorf("world: unknown vSwitch %q", vsw)
	}
	if n, capped := st.free[vsw]; capped && n <= 0 {
		return "", fmt.Errorf("world: %s: %w", vsw, ErrNoAddress)
	}
	pf := netip.MustParsePrefix(sw.CIDR).Masked()
	first := pf.Addr().Next()
	size := uint64(1) << (32 - pf.Bits())
	usable := size - 4
	start, ok := st.cursor[vsw]
	if !ok || !pf.Contains(start) {
		start = first
	}
	used := st.usedIn(vsw)
	a := start
	for range usable {
		if used[a] == "" {
			used[a] = owner
			st.cursor[vsw] = a.Next()
			if _, capped := st.free[vsw]; capped {
				st.free[vsw]--
			}
			return a.String(), nil
		}
		a = a.Next()
		if offset(pf, a) > usable {
			a = first
		}
	}
	return "", fmt.Errorf("world: %s: %w", vsw, ErrNoAddress)
}

// ReserveIP marks a specific address as taken by owner; it fails if the address is outside
// the vSwitch, reserved or in use.
func (st *State) ReserveIP(vsw, ip, owner string) error {
	sw, ok := st.world.VSwitch(vsw)
	if !ok {
		return fmt.Errorf("world: unknown vSwitch %q", vsw)
	}
	a, err := netip.ParseAddr(ip)
	pf := netip.MustParsePrefix(sw.CIDR).Masked()
	if err != nil || !pf.Contains(a) {
		return fmt.Errorf("world: %s is not in vSwitch %s (%s)", ip, vsw, sw.CIDR)
	}
	if off := offset(pf, a); off == 0 || off > (uint64(1)<<(32-pf.Bits()))-4 {
		return fmt.Errorf("world: %s is a reserved address of %s", ip, vsw)
	}
	if st.usedIn(vsw)[a] != "" {
		return fmt.Errorf("world: %s is in use", ip)
	}
	if n, capped := st.free[vsw]; capped {
		if n <= 0 {
			return fmt.Errorf("world: %s: %w", vsw, ErrNoAddress)
		}
		st.free[vsw]--
	}
	st.usedIn(vsw)[a] = owner
	return nil
}

func offset(pf netip.Prefix, a netip.Addr) uint64 {
	b, n := pf.Addr().As4(), a.As4()
	base := uint64(b[0])<<24 | uint64(b[1])<<16 | uint64(b[2])<<8 | uint64(b[3])
	x := uint64(n[0])<<24 | uint64(n[1])<<16 | uint64(n[2])<<8 | uint64(n[3])
	return x - base
}

// ReleaseIPs returns an ENI's addresses to its vSwitch.
func (st *State) ReleaseIPs(e *ENI) {
	used := st.usedIn(e.VSwitch)
	for _, ip := range e.PrivateIPs {
		if a, err := netip.ParseAddr(ip); err == nil && used[a] == e.ID {
			delete(used, a)
			if _, capped := st.free[e.VSwitch]; capped {
				st.free[e.VSwitch]++
			}
		}
	}
}

// NewENIID returns an unused ENI id in Alibaba's style (eni- and 20 lower-case characters).
func (st *State) NewENIID() string {
	const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
	for {
		b := []byte("eni-bp1")
		for range 17 {
			b = append(b, alphabet[st.rng.IntN(len(alphabet))])
		}
		if _, taken := st.ENIs[string(b)]; !taken {
			return string(b)
		}
	}
}

// AddENI adds a new ENI.
func (st *State) AddENI(e *ENI) {
	st.rememberENI(e.ID, st.now)
	st.ENIs[e.ID] = e
}

// DeleteENI removes an ENI and frees its addresses.
func (st *State) DeleteENI(id string) {
	if e, ok := st.ENIs[id]; ok {
		st.rememberENI(id, st.now)
		st.ReleaseIPs(e)
		delete(st.ENIs, id)
		delete(st.pending, id)
		st.endOp(id, OutcomeReleased, st.now)
	}
}

// Change kinds.
const (
	KindInstance = "instance"
	KindENI      = "eni"
)

// StatusDeleted is the To of the change that releases an instance, the state name ECS's
// Instance:StateChange event uses for it.
const StatusDeleted = "Deleted"

// Change is one status change of an instance or an ENI, at the time it happened (an
// asynchronous change at its due time, though the store applies it lazily).
type Change struct {
	// Seq numbers changes from 1 in the order the store applied them.
	Seq  int    `json:"seq"`
	Kind string `json:"kind"` // KindInstance or KindENI
	ID   string `json:"id"`
	// Instance is the instance concerned: the instance itself, or the one an ENI is
	// bound to (or was, for a change to Available).
	Instance string    `json:"instance,omitempty"`
	From     string    `json:"from"`
	To       string    `json:"to"`
	At       time.Time `json:"at"`
}

func (st *State) change(kind, id, inst, from, to string, at time.Time) {
	st.changes = append(st.changes, Change{Seq: len(st.changes) + 1, Kind: kind, ID: id, Instance: inst, From: from, To: to, At: at})
}

// Changes returns the status changes numbered from (Seq) onwards, so a driver emitting
// events (ECS Instance:StateChange) can poll with the Seq after the last one it saw. Due
// asynchronous changes are applied first.
func (s *Store) Changes(from int) []Change {
	var out []Change
	s.View(func(st *State) {
		if from < 1 {
			from = 1
		}
		if from <= len(st.changes) {
			out = slices.Clone(st.changes[from-1:])
		}
	})
	return out
}

// NextDue returns when the next asynchronous change is due, and false when none is
// pending, so a driver can wait exactly until then before calling Changes.
func (s *Store) NextDue() (time.Time, bool) {
	var next time.Time
	s.View(func(st *State) {
		for _, e := range st.pending {
			if e.Transition != nil && (next.IsZero() || e.Transition.At.Before(next)) {
				next = e.Transition.At
			}
		}
		for _, in := range st.pendingInst {
			if in.Transition != nil && (next.IsZero() || in.Transition.At.Before(next)) {
				next = in.Transition.At
			}
		}
	})
	return next, !next.IsZero()
}

// LaunchInstance adds a new instance as a scaling activity does: Pending now, Starting
// after pending, Running after pending+starting, with a primary ENI on its vSwitch and an
// address allocated. in needs an unused id, a known type and vSwitch (zone and creation
// and start times are filled in); its status is ignored.
func (st *State) LaunchInstance(in Instance, pending, starting time.Duration) error {
	w := st.world
	if !IsInstanceID(in.ID) {
		return fmt.Errorf("world: launch: malformed instance id %q", in.ID)
	}
	if _, taken := st.Instances[in.ID]; taken {
		return fmt.Errorf("world: launch: instance %s exists", in.ID)
	}
	if _, ok := w.InstanceType(in.Type); !ok {
		return fmt.Errorf("world: launch %s: unknown instance type %q", in.ID, in.Type)
	}
	sw, ok := w.VSwitch(in.VSwitch)
	if !ok || sw.Deleted {
		return fmt.Errorf("world: launch %s: unknown vSwitch %q", in.ID, in.VSwitch)
	}
	for _, g := range in.SecurityGroups {
		if _, ok := w.SecurityGroup(g); !ok {
			return fmt.Errorf("world: launch %s: unknown security group %q", in.ID, g)
		}
	}
	c := in.clone()
	c.Zone = sw.Zone
	c.Status = StatusPending
	c.CreationTime, c.StartTime = At(st.now), At(st.now)
	c.Released = false
	if c.PrimaryENI == "" {
		sum := sha1.Sum([]byte(c.ID))
		c.PrimaryENI = "eni-" + hex.EncodeToString(sum[:])[:20]
	}
	if _, taken := st.ENIs[c.PrimaryENI]; taken {
		return fmt.Errorf("world: launch %s: ENI id %s is taken", c.ID, c.PrimaryENI)
	}
	e := &ENI{ID: c.PrimaryENI, VSwitch: c.VSwitch, SecurityGroups: slices.Clone(c.SecurityGroups), Type: ENIPrimary,
		Status: ENIInUse, InstanceID: c.ID, CreationTime: c.CreationTime, MAC: MACFor(c.PrimaryENI)}
	ip, err := st.AllocateIP(c.VSwitch, e.ID)
	if err != nil {
		return fmt.Errorf("world: launch %s: %w", c.ID, err)
	}
	e.PrivateIPs, c.PrivateIP = []string{ip}, ip
	st.rememberInstance(c.ID, st.now)
	st.Instances[c.ID] = c
	st.AddENI(e)
	st.change(KindInstance, c.ID, c.ID, "", StatusPending, st.now)
	c.Transition = &Transition{To: StatusStarting, At: st.now.Add(pending),
		Then: &Transition{To: StatusRunning, At: st.now.Add(pending + starting)}}
	st.pendingInst[c.ID] = c
	return nil
}

// LaunchInstance adds a launching instance; see State.LaunchInstance.
func (s *Store) LaunchInstance(in Instance, pending, starting time.Duration) error {
	return s.Update(func(st *State) error { return st.LaunchInstance(in, pending, starting) })
}

// ErrInstanceState is returned when an instance is not in a state the change allows.
var ErrInstanceState = errors.New("instance state does not allow it")

// ErrNoInstance is returned for an unknown or released instance.
var ErrNoInstance = errors.New("no such instance")

func (st *State) liveInstance(id string) (*Instance, error) {
	in, ok := st.Instances[id]
	if !ok || in.Released {
		return nil, fmt.Errorf("world: %s: %w", id, ErrNoInstance)
	}
	return in, nil
}

// SetInstanceStatus sets an instance's status at once, as a scenario does by hand (a
// Running instance gets now as its start time). It records history for lagging reads.
func (st *State) SetInstanceStatus(id, status string) error {
	in, err := st.liveInstance(id)
	if err != nil {
		return err
	}
	st.rememberInstance(id, st.now)
	st.change(KindInstance, id, id, in.Status, status, st.now)
	in.Status = status
	in.Transition = nil
	delete(st.pendingInst, id)
	if status == StatusRunning {
		in.StartTime = At(st.now)
	}
	return nil
}

// StartInstance makes a Stopped (or Pending, just created) instance Starting now and
// Running after d, as ECS StartInstance does; d < 0 takes the world's timing.start.
func (st *State) StartInstance(id string, d time.Duration) error {
	return st.transit(id, d, st.world.Timing.Start, StatusStarting, StatusRunning, StatusStopped, StatusPending)
}

// StopInstance makes a Running instance Stopping now and Stopped after d, as ECS
// StopInstance does; d < 0 takes the world's timing.stop. ENIs attaching or detaching go
// on (an assumption: ECS does not document that a stop interrupts them).
func (st *State) StopInstance(id string, d time.Duration) error {
	return st.transit(id, d, st.world.Timing.Stop, StatusStopping, StatusStopped, StatusRunning)
}

func (st *State) transit(id string, d time.Duration, def fault.Duration, via, to string, from ...string) error {
	in, err := st.liveInstance(id)
	if err != nil {
		return err
	}
	if !slices.Contains(from, in.Status) || in.Transition != nil {
		return fmt.Errorf("world: %s is %s, not %s: %w", id, in.Status, strings.Join(from, " or "), ErrInstanceState)
	}
	if d < 0 {
		d = def.D()
	}
	st.rememberInstance(id, st.now)
	st.change(KindInstance, id, id, in.Status, via, st.now)
	in.Status = via
	in.Transition = &Transition{To: to, At: st.now.Add(d)}
	st.pendingInst[id] = in
	return nil
}

// ReleaseInstance releases an instance at once, whatever its state: it becomes a
// tombstone (InvalidInstanceId.NotFound, absent from DescribeInstances), and the ENIs bound
// to it, Attaching, InUse or Detaching, are released with it (deleted, addresses freed)
// when they are to be (ENI.ReleasedWithInstance, the primary always), else detached and
// Available at once. An unfinished attach or detach ends with outcome Released. See the
// package doc for what ECS documents and what is assumed.
func (st *State) ReleaseInstance(id string) error {
	in, err := st.liveInstance(id)
	if err != nil {
		return err
	}
	for _, e := range st.Attached(id) {
		if e.Type == ENIPrimary || e.ReleasedWithInstance() {
			st.change(KindENI, e.ID, id, e.Status, StatusDeleted, st.now)
			st.DeleteENI(e.ID)
			continue
		}
		st.rememberENI(e.ID, st.now)
		st.change(KindENI, e.ID, id, e.Status, ENIAvailable, st.now)
		e.Status = ENIAvailable
		e.InstanceID = ""
		e.DeviceIndex = 0
		e.NetworkCardIndex = 0
		e.AttachedAt = time.Time{}
		e.Transition = nil
		delete(st.pending, e.ID)
		st.endOp(e.ID, OutcomeReleased, st.now)
	}
	st.rememberInstance(id, st.now)
	st.change(KindInstance, id, id, in.Status, StatusDeleted, st.now)
	in.Released = true
	in.Transition = nil
	delete(st.pendingInst, id)
	return nil
}

// StartInstance starts a Stopped or Pending instance through Starting; see
// State.StartInstance.
func (s *Store) StartInstance(id string, d time.Duration) error {
	return s.Update(func(st *State) error { return st.StartInstance(id, d) })
}

// StopInstance stops a Running instance through Stopping; see State.StopInstance.
func (s *Store) StopInstance(id string, d time.Duration) error {
	return s.Update(func(st *State) error { return st.StopInstance(id, d) })
}

// ReleaseInstance releases an instance; see State.ReleaseInstance.
func (s *Store) ReleaseInstance(id string) error {
	return s.Update(func(st *State) error { return st.ReleaseInstance(id) })
}

// Operations returns every attach and detach accepted so far, in acceptance order, with
// its true duration and, once ended, its outcome.
func (s *Store) Operations() []Operation {
	var out []Operation
	s.View(func(st *State) { out = slices.Clone(st.ops) })
	return out
}

// KeepHistory makes the store keep at least d of history for lagging reads. The store
// keeps the world's faults.staleness bound from the start; this is for plans changed
// while running.
func (s *Store) KeepHistory(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.st.keep = max(s.st.keep, d)
}

// ViewLagging runs fn on the state as it was lag ago (view), for reads that may lag
// writes. truth is the current state when it differs from view, nil when view is the
// current state (lag 0, or nothing changed within it), so a caller can tell a stale answer
// from a current one. A lag beyond the history kept sees the oldest version kept (and
// extends the history for later reads). Neither state may be changed or kept.
func (s *Store) ViewLagging(lag time.Duration, fn func(view, truth *State)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.settle()
	if lag <= 0 {
		fn(s.st, nil)
		return
	}
	s.st.keep = max(s.st.keep, lag)
	view, changed := s.st.asOf(s.st.now.Add(-lag))
	if !changed {
		fn(s.st, nil)
		return
	}
	fn(view, s.st)
}

// asOf builds a read-only state as it was at t from the current one and the history, and
// reports whether it differs from the current one. It copies the maps only when some
// object differs, so reads lagging past every recent change cost little.
func (st *State) asOf(t time.Time) (*State, bool) {
	enis := map[string]*ENI{}
	for id, vs := range st.pastENI {
		if v, old := versionAt(vs, t); old {
			enis[id] = v
		}
	}
	insts := map[string]*Instance{}
	for id, vs := range st.pastInst {
		if v, old := versionAt(vs, t); old {
			insts[id] = v
		}
	}
	if len(enis) == 0 && len(insts) == 0 {
		return st, false
	}
	view := &State{world: st.world, now: st.now, Instances: maps.Clone(st.Instances), ENIs: maps.Clone(st.ENIs)}
	for id, v := range enis {
		if v == nil {
			delete(view.ENIs, id)
		} else {
			view.ENIs[id] = v
		}
	}
	for id, v := range insts {
		if v == nil {
			delete(view.Instances, id)
		} else {
			view.Instances[id] = v
		}
	}
	return view, true
}

// versionAt returns the version valid at t, and whether it is a past one (false: the
// current version was already valid at t).
func versionAt[T any](vs []version[T], t time.Time) (*T, bool) {
	var v *T
	old := false
	for i := len(vs) - 1; i >= 0 && t.Before(vs[i].until); i-- {
		v, old = vs[i].v, true
	}
	return v, old
}

// ENIByClientToken returns the ENI created with a CreateNetworkInterface ClientToken.
func (st *State) ENIByClientToken(token string) (*ENI, bool) {
	if token == "" {
		return nil, false
	}
	for _, e := range st.ENIs {
		if e.ClientToken == token {
			return e, true
		}
	}
	return nil, false
}

// Instance returns a copy of an instance.
func (s *Store) Instance(id string) (Instance, bool) {
	var out Instance
	var ok bool
	s.View(func(st *State) {
		var in *Instance
		if in, ok = st.Instances[id]; ok {
			out = *in.clone()
		}
	})
	return out, ok
}

// ENI returns a copy of an ENI.
func (s *Store) ENI(id string) (ENI, bool) {
	var out ENI
	var ok bool
	s.View(func(st *State) {
		var e *ENI
		if e, ok = st.ENIs[id]; ok {
			out = *e.clone()
		}
	})
	return out, ok
}

// Instances returns copies of the instances for which every filter is true, by id.
func (s *Store) Instances(filters ...func(*Instance) bool) []Instance {
	var out []Instance
	s.View(func(st *State) {
	next:
		for _, id := range sortedKeys(st.Instances) {
			in := st.Instances[id]
			for _, f := range filters {
				if !f(in) {
					continue next
				}
			}
			out = append(out, *in.clone())
		}
	})
	return out
}

// ENIs returns copies of the ENIs for which every filter is true, by id.
func (s *Store) ENIs(filters ...func(*ENI) bool) []ENI {
	var out []ENI
	s.View(func(st *State) {
	next:
		for _, id := range sortedKeys(st.ENIs) {
			e := st.ENIs[id]
			for _, f := range filters {
				if !f(e) {
					continue next
				}
			}
			out = append(out, *e.clone())
		}
	})
	return out
}

// OnInstance is an ENIs filter: ENIs bound to the instance (Attaching, InUse or Detaching).
func OnInstance(id string) func(*ENI) bool {
	return func(e *ENI) bool {
		return e.InstanceID == id && (e.Status == ENIAttaching || e.Status == ENIInUse || e.Status == ENIDetaching)
	}
}

// Tagged is an ENIs filter: ENIs carrying the tag key=value.
func Tagged(key, value string) func(*ENI) bool {
	return func(e *ENI) bool { v, ok := e.Tags[key]; return ok && v == value }
}

// WithStatus is an ENIs filter: ENIs in one of the statuses.
func WithStatus(statuses ...string) func(*ENI) bool {
	return func(e *ENI) bool { return slices.Contains(statuses, e.Status) }
}

// Snapshot is the whole live state at one instant, for the debug endpoint.
type Snapshot struct {
	Time      time.Time  `json:"time"`
	Instances []Instance `json:"instances"`
	ENIs      []ENI      `json:"enis"`
	// Operations are the attaches and detaches so far with their true durations.
	Operations []Operation `json:"operations"`
}

// Snapshot returns a consistent copy of the live state.
func (s *Store) Snapshot() Snapshot {
	var snap Snapshot
	s.View(func(st *State) {
		snap.Time = st.now
		for _, id := range sortedKeys(st.Instances) {
			snap.Instances = append(snap.Instances, *st.Instances[id].clone())
		}
		for _, id := range sortedKeys(st.ENIs) {
			snap.ENIs = append(snap.ENIs, *st.ENIs[id].clone())
		}
		snap.Operations = slices.Clone(st.ops)
	})
	return snap
}

// SnapshotJSON is Snapshot encoded as indented JSON.
func (s *Store) SnapshotJSON() ([]byte, error) {
	b, err := json.MarshalIndent(s.Snapshot(), "", "  ")
	if err != nil {
		return nil, fmt.Errorf("world: snapshot: %w", err)
	}
	return b, nil
}

func (in *Instance) clone() *Instance {
	c := *in
	c.Tags = maps.Clone(in.Tags)
	c.SecurityGroups = slices.Clone(in.SecurityGroups)
	c.Transition = in.Transition.clone()
	return &c
}

func (e *ENI) clone() *ENI {
	c := *e
	c.Tags = maps.Clone(e.Tags)
	c.SecurityGroups = slices.Clone(e.SecurityGroups)
	c.PrivateIPs = slices.Clone(e.PrivateIPs)
	if e.DeleteOnRelease != nil {
		v := *e.DeleteOnRelease
		c.DeleteOnRelease = &v
	}
	c.IPv6 = slices.Clone(e.IPv6)
	c.Transition = e.Transition.clone()
	return &c
}
