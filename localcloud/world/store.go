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
	"sync"
	"time"
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

	pending map[string]*ENI                  // ENIs with a Transition
	used    map[string]map[netip.Addr]string // vSwitch -> address -> owner id
	free    map[string]int                   // vSwitch -> addresses left, for capped vSwitches
	cursor  map[string]netip.Addr            // vSwitch -> where the next allocation search starts
}

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
		free:      map[string]int{},
		cursor:    map[string]netip.Addr{},
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
// returns an error are kept, so fn should check before it mutates.
func (s *Store) Update(fn func(*State) error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.settle()
	return fn(s.st)
}

// settle applies every transition that is due. The caller holds s.mu.
func (s *Store) settle() {
	now := s.clock()
	s.st.now = now
	for id, e := range s.st.pending {
		if e.Transition == nil {
			delete(s.st.pending, id)
			continue
		}
		if now.Before(e.Transition.At) {
			continue
		}
		e.Status = e.Transition.To
		if e.Status == ENIAvailable {
			e.InstanceID = ""
			e.DeviceIndex = 0
			e.NetworkCardIndex = 0
			e.AttachedAt = time.Time{}
		}
		e.Transition = nil
		delete(s.st.pending, id)
	}
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
	e.Status = ENIAttaching
	e.InstanceID = in.ID
	e.DeviceIndex = idx
	e.NetworkCardIndex = networkCard
	e.AttachedAt = st.now
	to := ENIInUse
	if rollback {
		to = ENIAvailable
	}
	e.Transition = &Transition{To: to, At: st.now.Add(st.world.Timing.Attach.D() + st.jitter()), Rollback: rollback}
	st.pending[e.ID] = e
}

// Detach starts a detachment: Detaching now, Available after the world's detach time.
func (st *State) Detach(e *ENI) {
	e.Status = ENIDetaching
	e.Transition = &Transition{To: ENIAvailable, At: st.now.Add(st.world.Timing.Detach.D() + st.jitter())}
	st.pending[e.ID] = e
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
func (st *State) AddENI(e *ENI) { st.ENIs[e.ID] = e }

// DeleteENI removes an ENI and frees its addresses.
func (st *State) DeleteENI(id string) {
	if e, ok := st.ENIs[id]; ok {
		st.ReleaseIPs(e)
		delete(st.ENIs, id)
		delete(st.pending, id)
	}
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
	return &c
}

func (e *ENI) clone() *ENI {
	c := *e
	c.Tags = maps.Clone(e.Tags)
	c.SecurityGroups = slices.Clone(e.SecurityGroups)
	c.PrivateIPs = slices.Clone(e.PrivateIPs)
	c.IPv6 = slices.Clone(e.IPv6)
	if e.Transition != nil {
		t := *e.Transition
		c.Transition = &t
	}
	return &c
}
