// Package world describes the local cloud's universe, the account and everything in it, and
// holds the live state the emulated services change.
//
// A world file is YAML or JSON with one schema (field names are the same in both). Load
// validates it and reports every problem with the path of the bad field, for example
// `instances[3].vswitch: unknown vSwitch "vsw-x"`.
//
// # World file fields
//
//	account:                   the Alibaba Cloud account every resource belongs to
//	  id:                      account id, digits ("1234567890123456")
//	  type:                    enterprise | individual | unverified; ECS refuses unverified
//	                           accounts (InvalidUserType.NotSupported)
//	  closed:                  true: every key of the account is refused (Abs.InvalidAccount.NotFound)
//	  quotas:
//	    enis:                  max secondary ENIs in the account (CreateNetworkInterface:
//	                           MaxEniCountExceeded); 0 = unlimited
//	    attachedEnis:          max secondary ENIs attached or attaching account-wide
//	                           (AttachNetworkInterface: MaxEniCountExceeded); 0 = unlimited
//	principals[]:              identities that sign requests
//	  name:                    unique; for roles the role name (ARN acs:ram::<account>:role/<name>)
//	  kind:                    account (the root AccessKey) | ram-user | role (STS only)
//	  accessKeys[]:            long-term keys (account and ram-user only)
//	    id, secret:            the AccessKey pair
//	    disabled:              true: InvalidAccessKeyId.Inactive
//	  policies[]:              names of entries in policies (ram-user and role only)
//	policies[]:                RAM policy documents (real JSON format, see package ram)
//	  name:                    unique
//	  document:                the document inline (a YAML/JSON object, or a JSON string), or
//	  file:                    a path to a JSON document, relative to the world file, or
//	  rendered:                the function's policy rendered for this world (package deploy,
//	                           what `make policy` writes): pinned to the world's account and
//	    region:                the function's region (default: the first region)
//	    tagKey:                pool tag key (default enipool)
//	    deadLetterQueue:       (default enipool-dlq)
//	    pools[]:               pool tag values served, or ["*"] for any (required)
//	    scalingGroups[]:       scaling groups served, or ["*"] for any of the region (required)
//	    warm:                  the warm target's pool, vswitches[] and securityGroups[];
//	                           absent: no create, no delete
//	regions[]:
//	  id:                      e.g. cn-hangzhou
//	  zones[]:                 zone ids, unique across regions
//	  eniUnsupported:          true: the ECS ENI service is not offered here (Forbidden.RegionId)
//	vpcs[]:                    id (vpc-...), region, cidr
//	vswitches[]:               id (vsw-...), vpc, zone (in the VPC's region), cidr (inside the VPC's)
//	  availableIps:            optional cap on the addresses still free to allocate
//	                           (InvalidVSwitchId.IpNotEnough when spent)
//	  deleted:                 true: a tombstone; ENIs on it fail to attach (InvalidVSwitchId.NotFound)
//	securityGroups[]:          id (sg-...)
//	  type:                    vpc (default when vpc is set) | classic (InvalidSecurityGroupId.NotVpc)
//	  vpc:                     the VPC of a vpc-type group
//	  maxInstances:            instances the group may hold (default 2000;
//	                           SecurityGroupInstanceLimitExceed)
//	  deleted:                 true: a tombstone (InvalidSecurityGroupId.NotFound)
//	instanceTypes[]:           id (ecs.g7.large), family, generation (ecs-1 has no ENI support:
//	                           InvalidOperation.InvalidGeneration), cpu, memoryGiB,
//	  eniQuantity:             ENIs per instance, primary included (EniPerInstanceLimitExceeded)
//	  eniPrivateIpAddressQuantity: IPv4 addresses per ENI (InvalidOperation.Ipv4CountExceeded)
//	  eniIpv6AddressQuantity:  IPv6 addresses per ENI; 0 = no IPv6 (InvalidOperation.Ipv6NotSupport)
//	  networkCardQuantity:     network cards (valid NetworkCardIndex values), default 1
//	  attachRequiresStopped:   shared / burstable families: attach only when Stopped
//	instances[]:
//	  id:                      i-...
//	  name, type, zone, vswitch (zone defaults to the vSwitch's), privateIp (default: allocated)
//	  status:                  Pending | Running | Starting | Stopping | Stopped (default Running)
//	  startTime, creationTime: RFC 3339, or a duration relative to load time ("-5m"); default now.
//	                           A Running instance last started before 2018-04-01 cannot take ENIs.
//	  tags:                    {key: value}
//	  securityGroups[]:        group ids (VPC groups of the instance's VPC)
//	  primaryEni:              id of its primary ENI (default derived from the instance id; the
//	                           ENI is created unless listed under enis with type Primary)
//	  ownerId:                 another account's instance: not visible (InvalidInstanceId.NotFound)
//	  released:                true: a tombstone of a released instance (InvalidInstanceId.NotFound)
//	  ownerOnly:               true: only the account itself may manage it (Forbidden.SubUser for RAM identities)
//	enis[]:
//	  id:                      eni-...
//	  name, description, vswitch, securityGroups[]
//	  type:                    Secondary (default) | Primary (InvalidOperation.InvalidEniType on attach)
//	  status:                  Available (default) | InUse (needs instanceId)
//	  instanceId:              the instance an InUse or Primary ENI is attached to
//	  tags:                    {key: value}
//	  serviceManaged:          true: managed by a cloud service (InvalidOperation.EniServiceManaged)
//	  privateIps[]:            first is the primary address (default: one, allocated)
//	  ipv6[]:                  IPv6 addresses
//	  mac:                     default derived from the id
//	  creationTime:            as for instances
//	  ownerId:                 another account's ENI: invisible unless sharedWithAccount
//	  sharedWithAccount:       an InstanceAttach permission to this account; RAM identities
//	                           may not use it (Forbidden.NotSupportRAM)
//	  deleteOnRelease:         false: kept (detached, Available) when its instance is released;
//	                           default true, released with it, as ECS does by default
//	  ownerOnly:               true: Forbidden.SubUser for RAM identities
//	lifecycleHooks[]:          ESS lifecycle hooks
//	  id (ash-...), name, scalingGroupId, region (default: the first region)
//	  transition:              SCALE_OUT (default) | SCALE_IN
//	  defaultResult:           CONTINUE (default) | ABANDON | ROLLBACK, applied on timeout
//	  heartbeatTimeout:        Go duration, default 600s
//	  pending[]:               lifecycle actions waiting at load: token, instanceIds[], scalingActivityId
//	queues[]:                  MNS queue names
//	timing:
//	  attach:                  Attaching -> InUse (or back to Available on a rollback), Go duration
//	  detach:                  Detaching -> Available
//	  jitter:                  uniform [0, jitter) added to each, drawn from faults.seed
//	  attachSpread:            {median, p99, max}: each attach's duration drawn from a
//	                           log-normal with that median and 99th percentile, seeded by
//	                           faults.seed and the attach's index; replaces attach + jitter
//	  detachSpread:            the same for detaches
//	  start, stop:             how long an instance stays Starting / Stopping when a scenario
//	                           starts or stops it (Store.StartInstance, Store.StopInstance)
//	throttling[]:              per-action token buckets, first match wins
//	  service, action:         empty matches any
//	  qps, burst:              refill rate and bucket size (Throttling.User when empty)
//	faults:                    a fault.Plan (seed, errors, latency, outages, attachRollback,
//	                           staleness, afterAction, responseLatency); see package fault
//
// # Realism
//
// Production ECS is less kind than a fresh emulator; these knobs make the local cloud as
// demanding, each off by default (so existing worlds behave as before) and seeded:
//
//   - Reads that lag writes (faults.staleness): the Store keeps a short history of every
//     ENI and instance and serves a read as of now minus a lag drawn per call
//     (Store.ViewLagging). ECS documents asynchronous states (Attaching, Detaching) and asks
//     callers to poll (https://www.alibabacloud.com/help/en/ecs/developer-reference/api-ecs-2014-05-26-detachnetworkinterface);
//     how far a describe may lag a write is not documented: the bound and its uniform
//     draw are assumptions.
//   - Attach and detach durations with a long tail (timing.attachSpread, detachSpread):
//     log-normal given median and p99. The shape and the figures are assumptions (no
//     public source gives ECS attach-time percentiles); each operation's true duration is
//     recorded (Store.Operations, and "operations" in the debug state).
//   - Instances passing through Starting and Stopping (Store.StartInstance, StopInstance,
//     ReleaseInstance, timing.start and timing.stop), and launched through Pending and
//     Starting (Store.LaunchInstance). Store.Changes lists every instance and ENI status
//     change at its true time, and Store.NextDue says when the next one is due, for a
//     driver that emits ECS Instance:StateChange events. The states are ECS's documented
//     instance lifecycle (https://www.alibabacloud.com/help/doc-detail/25380.htm);
//     what happens to an ENI attaching while its instance stops or is released is not
//     documented. ECS documents that releasing an instance releases the ENIs attached to
//     it, primary and secondary, unless their "Delete on instance release"
//     (DeleteOnRelease) is off, in which case they are kept
//     (https://www.alibabacloud.com/help/doc-detail/2938787.html): ReleaseInstance deletes
//     the primary ENI and every secondary ENI with deleteOnRelease unset or true, and
//     detaches the others, which become Available. Assumptions: an ENI still Attaching
//     (or Detaching) counts as attached, so it is deleted or kept likewise, at once; a
//     stop does not interrupt an attach or a detach (the ENI reaches InUse on the
//     stopping or stopped instance).
package world

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/enipool/enipool/deploy"
	"github.com/enipool/enipool/localcloud/auth"
	"github.com/enipool/enipool/localcloud/fault"
	"github.com/enipool/enipool/localcloud/ram"
)

// World is a validated world description. Its fields are the file's; treat a loaded World
// as read-only (the Store copies what it mutates).
type World struct {
	Account        Account         `json:"account" yaml:"account"`
	Principals     []Principal     `json:"principals,omitempty" yaml:"principals,omitempty"`
	Policies       []PolicyDoc     `json:"policies,omitempty" yaml:"policies,omitempty"`
	Regions        []Region        `json:"regions" yaml:"regions"`
	VPCs           []VPC           `json:"vpcs,omitempty" yaml:"vpcs,omitempty"`
	VSwitches      []VSwitch       `json:"vswitches,omitempty" yaml:"vswitches,omitempty"`
	SecurityGroups []SecurityGroup `json:"securityGroups,omitempty" yaml:"securityGroups,omitempty"`
	InstanceTypes  []InstanceType  `json:"instanceTypes,omitempty" yaml:"instanceTypes,omitempty"`
	Instances      []Instance      `json:"instances,omitempty" yaml:"instances,omitempty"`
	ENIs           []ENI           `json:"enis,omitempty" yaml:"enis,omitempty"`
	LifecycleHooks []LifecycleHook `json:"lifecycleHooks,omitempty" yaml:"lifecycleHooks,omitempty"`
	Queues         []string        `json:"queues,omitempty" yaml:"queues,omitempty"`
	Timing         Timing          `json:"timing" yaml:"timing"`
	Throttling     []Throttle      `json:"throttling,omitempty" yaml:"throttling,omitempty"`
	Faults         fault.Plan      `json:"faults" yaml:"faults"`

	// Indexes built by Validate.
	policies  map[string]*ram.Policy
	regions   map[string]*Region
	zones     map[string]string // zone -> region
	vpcs      map[string]*VPC
	vswitches map[string]*VSwitch
	sgs       map[string]*SecurityGroup
	types     map[string]*InstanceType
	hooks     map[string]*LifecycleHook
}

// Account is the account the world belongs to.
type Account struct {
	ID     string `json:"id" yaml:"id"`
	Type   string `json:"type" yaml:"type"`
	Closed bool   `json:"closed,omitempty" yaml:"closed,omitempty"`
	Quotas Quotas `json:"quotas" yaml:"quotas"`
}

// Account types. ECS serves enterprise and individual (real-name verified) accounts only.
const (
	AccountEnterprise = "enterprise"
	AccountIndividual = "individual"
	AccountUnverified = "unverified"
)

// Quotas are account-wide limits; zero means unlimited.
type Quotas struct {
	ENIs         int `json:"enis,omitempty" yaml:"enis,omitempty"`
	AttachedENIs int `json:"attachedEnis,omitempty" yaml:"attachedEnis,omitempty"`
}

// Principal is an identity that signs requests.
type Principal struct {
	Name       string      `json:"name" yaml:"name"`
	Kind       auth.Kind   `json:"kind" yaml:"kind"`
	AccessKeys []AccessKey `json:"accessKeys,omitempty" yaml:"accessKeys,omitempty"`
	Policies   []string    `json:"policies,omitempty" yaml:"policies,omitempty"`
}

// AccessKey is a long-term key pair.
type AccessKey struct {
	ID       string `json:"id" yaml:"id"`
	Secret   string `json:"secret" yaml:"secret"`
	Disabled bool   `json:"disabled,omitempty" yaml:"disabled,omitempty"`
}

// PolicyDoc is a named RAM policy document: inline, in a file, or rendered by package deploy.
type PolicyDoc struct {
	Name     string          `json:"name" yaml:"name"`
	Document any             `json:"document,omitempty" yaml:"document,omitempty"`
	File     string          `json:"file,omitempty" yaml:"file,omitempty"`
	Rendered *RenderedPolicy `json:"rendered,omitempty" yaml:"rendered,omitempty"`
}

// RenderedPolicy is the function's RAM policy as deploy.RAMPolicy renders it for a
// deployment in this world; the account is the world's. Empty fields take the defaults of
// s.yaml (tag key enipool, dead-letter queue enipool-dlq) and the world's first region.
type RenderedPolicy struct {
	Region          string       `json:"region,omitempty" yaml:"region,omitempty"`
	TagKey          string       `json:"tagKey,omitempty" yaml:"tagKey,omitempty"`
	DeadLetterQueue string       `json:"deadLetterQueue,omitempty" yaml:"deadLetterQueue,omitempty"`
	Pools           []string     `json:"pools,omitempty" yaml:"pools,omitempty"`
	ScalingGroups   []string     `json:"scalingGroups,omitempty" yaml:"scalingGroups,omitempty"`
	Warm            *deploy.Warm `json:"warm,omitempty" yaml:"warm,omitempty"`
}

// deployment is the deployment r describes in w.
func (r RenderedPolicy) deployment(w *World) deploy.Deployment {
	d := deploy.Deployment{Region: r.Region, AccountID: w.Account.ID, TagKey: r.TagKey, Pools: r.Pools,
		ScalingGroups: r.ScalingGroups, DeadLetterQueue: r.DeadLetterQueue, Warm: r.Warm}
	if d.Region == "" && len(w.Regions) > 0 {
		d.Region = w.Regions[0].ID
	}
	if d.TagKey == "" {
		d.TagKey = "enipool"
	}
	if d.DeadLetterQueue == "" {
		d.DeadLetterQueue = "enipool-dlq"
	}
	return d
}

// Region is a region and its zones.
type Region struct {
	ID             string   `json:"id" yaml:"id"`
	Zones          []string `json:"zones" yaml:"zones"`
	ENIUnsupported bool     `json:"eniUnsupported,omitempty" yaml:"eniUnsupported,omitempty"`
}

// VPC is a virtual private cloud.
type VPC struct {
	ID     string `json:"id" yaml:"id"`
	Region string `json:"region" yaml:"region"`
	CIDR   string `json:"cidr" yaml:"cidr"`
}

// VSwitch is a subnet of a VPC in one zone.
type VSwitch struct {
	ID           string `json:"id" yaml:"id"`
	VPC          string `json:"vpc" yaml:"vpc"`
	Zone         string `json:"zone" yaml:"zone"`
	CIDR         string `json:"cidr" yaml:"cidr"`
	AvailableIPs *int   `json:"availableIps,omitempty" yaml:"availableIps,omitempty"`
	Deleted      bool   `json:"deleted,omitempty" yaml:"deleted,omitempty"`
}

// SecurityGroup is a security group.
type SecurityGroup struct {
	ID           string `json:"id" yaml:"id"`
	Type         string `json:"type,omitempty" yaml:"type,omitempty"`
	VPC          string `json:"vpc,omitempty" yaml:"vpc,omitempty"`
	MaxInstances int    `json:"maxInstances,omitempty" yaml:"maxInstances,omitempty"`
	Deleted      bool   `json:"deleted,omitempty" yaml:"deleted,omitempty"`
}

// Security group types.
const (
	SecurityGroupVPC     = "vpc"
	SecurityGroupClassic = "classic"
)

// DefaultSecurityGroupCapacity is the number of instances a basic security group holds.
const DefaultSecurityGroupCapacity = 2000

// InstanceType is an instance type's ENI-relevant specification.
type InstanceType struct {
	ID                    string  `json:"id" yaml:"id"`
	Family                string  `json:"family" yaml:"family"`
	Generation            string  `json:"generation" yaml:"generation"`
	CPU                   int     `json:"cpu,omitempty" yaml:"cpu,omitempty"`
	MemoryGiB             float64 `json:"memoryGiB,omitempty" yaml:"memoryGiB,omitempty"`
	ENIQuantity           int     `json:"eniQuantity" yaml:"eniQuantity"`
	ENIPrivateIPQuantity  int     `json:"eniPrivateIpAddressQuantity" yaml:"eniPrivateIpAddressQuantity"`
	ENIIPv6Quantity       int     `json:"eniIpv6AddressQuantity,omitempty" yaml:"eniIpv6AddressQuantity,omitempty"`
	NetworkCards          int     `json:"networkCardQuantity,omitempty" yaml:"networkCardQuantity,omitempty"`
	AttachRequiresStopped bool    `json:"attachRequiresStopped,omitempty" yaml:"attachRequiresStopped,omitempty"`
}

// GenerationWithoutENI is the instance generation (Series I) that cannot take ENIs.
const GenerationWithoutENI = "ecs-1"

// Instance statuses.
const (
	StatusPending  = "Pending"
	StatusRunning  = "Running"
	StatusStarting = "Starting"
	StatusStopping = "Stopping"
	StatusStopped  = "Stopped"
)

// Instance is an ECS instance.
type Instance struct {
	ID             string            `json:"id" yaml:"id"`
	Name           string            `json:"name,omitempty" yaml:"name,omitempty"`
	Type           string            `json:"type" yaml:"type"`
	Zone           string            `json:"zone,omitempty" yaml:"zone,omitempty"`
	VSwitch        string            `json:"vswitch" yaml:"vswitch"`
	PrivateIP      string            `json:"privateIp,omitempty" yaml:"privateIp,omitempty"`
	Status         string            `json:"status,omitempty" yaml:"status,omitempty"`
	StartTime      Timestamp         `json:"startTime" yaml:"startTime,omitempty"`
	CreationTime   Timestamp         `json:"creationTime" yaml:"creationTime,omitempty"`
	Tags           map[string]string `json:"tags,omitempty" yaml:"tags,omitempty"`
	SecurityGroups []string          `json:"securityGroups,omitempty" yaml:"securityGroups,omitempty"`
	PrimaryENI     string            `json:"primaryEni,omitempty" yaml:"primaryEni,omitempty"`
	OwnerID        string            `json:"ownerId,omitempty" yaml:"ownerId,omitempty"`
	Released       bool              `json:"released,omitempty" yaml:"released,omitempty"`
	OwnerOnly      bool              `json:"ownerOnly,omitempty" yaml:"ownerOnly,omitempty"`

	// Transition is the pending status change (Starting -> Running, Stopping -> Stopped),
	// live state, not part of world files.
	Transition *Transition `json:"transition,omitempty" yaml:"-"`
}

// ENI types and statuses.
const (
	ENIPrimary   = "Primary"
	ENISecondary = "Secondary"

	ENIAvailable = "Available"
	ENIAttaching = "Attaching"
	ENIInUse     = "InUse"
	ENIDetaching = "Detaching"
)

// ENI is an elastic network interface.
type ENI struct {
	ID                string            `json:"id" yaml:"id"`
	Name              string            `json:"name,omitempty" yaml:"name,omitempty"`
	Description       string            `json:"description,omitempty" yaml:"description,omitempty"`
	VSwitch           string            `json:"vswitch" yaml:"vswitch"`
	SecurityGroups    []string          `json:"securityGroups,omitempty" yaml:"securityGroups,omitempty"`
	Type              string            `json:"type,omitempty" yaml:"type,omitempty"`
	Status            string            `json:"status,omitempty" yaml:"status,omitempty"`
	InstanceID        string            `json:"instanceId,omitempty" yaml:"instanceId,omitempty"`
	Tags              map[string]string `json:"tags,omitempty" yaml:"tags,omitempty"`
	ServiceManaged    bool              `json:"serviceManaged,omitempty" yaml:"serviceManaged,omitempty"`
	PrivateIPs        []string          `json:"privateIps,omitempty" yaml:"privateIps,omitempty"`
	IPv6              []string          `json:"ipv6,omitempty" yaml:"ipv6,omitempty"`
	MAC               string            `json:"mac,omitempty" yaml:"mac,omitempty"`
	CreationTime      Timestamp         `json:"creationTime" yaml:"creationTime,omitempty"`
	OwnerID           string            `json:"ownerId,omitempty" yaml:"ownerId,omitempty"`
	SharedWithAccount bool              `json:"sharedWithAccount,omitempty" yaml:"sharedWithAccount,omitempty"`
	OwnerOnly         bool              `json:"ownerOnly,omitempty" yaml:"ownerOnly,omitempty"`
	// DeleteOnRelease says whether the ENI is released with the instance it is bound to
	// (ECS's "Delete on instance release"); nil means true, ECS's default.
	DeleteOnRelease *bool `json:"deleteOnRelease,omitempty" yaml:"deleteOnRelease,omitempty"`

	// Live state, not part of world files.

	// DeviceIndex is the ENI's index on its instance (0 for the primary).
	DeviceIndex int `json:"deviceIndex" yaml:"-"`
	// NetworkCardIndex is the network card the ENI is attached to.
	NetworkCardIndex int `json:"networkCardIndex" yaml:"-"`
	// AttachedAt is when the current attachment was requested.
	AttachedAt time.Time `json:"attachedAt,omitzero" yaml:"-"`
	// Transition is the pending asynchronous change, applied once its time has come.
	Transition *Transition `json:"transition,omitempty" yaml:"-"`
	// ClientToken is the CreateNetworkInterface idempotency token that created it.
	ClientToken string `json:"clientToken,omitempty" yaml:"-"`
}

// ReleasedWithInstance reports whether the ENI is released with the instance it is bound
// to: DeleteOnRelease, true when unset.
func (e *ENI) ReleasedWithInstance() bool { return e.DeleteOnRelease == nil || *e.DeleteOnRelease }

// Transition is an ENI's pending status change.
type Transition struct {
	To string    `json:"to"`
	At time.Time `json:"at"`
	// Rollback marks an attach that will fall back to Available.
	Rollback bool `json:"rollback,omitempty"`
	// Then is the change that follows this one (a launching instance goes Pending ->
	// Starting -> Running).
	Then *Transition `json:"then,omitempty"`
}

func (t *Transition) clone() *Transition {
	if t == nil {
		return nil
	}
	c := *t
	c.Then = t.Then.clone()
	return &c
}

// Lifecycle hook transitions and results.
const (
	ScaleOut = "SCALE_OUT"
	ScaleIn  = "SCALE_IN"

	ResultContinue = "CONTINUE"
	ResultAbandon  = "ABANDON"
	ResultRollback = "ROLLBACK"
)

// LifecycleHook is an ESS lifecycle hook.
type LifecycleHook struct {
	ID               string          `json:"id" yaml:"id"`
	Name             string          `json:"name,omitempty" yaml:"name,omitempty"`
	ScalingGroupID   string          `json:"scalingGroupId" yaml:"scalingGroupId"`
	Region           string          `json:"region,omitempty" yaml:"region,omitempty"`
	Transition       string          `json:"transition,omitempty" yaml:"transition,omitempty"`
	DefaultResult    string          `json:"defaultResult,omitempty" yaml:"defaultResult,omitempty"`
	HeartbeatTimeout fault.Duration  `json:"heartbeatTimeout,omitempty" yaml:"heartbeatTimeout,omitempty"`
	Pending          []PendingAction `json:"pending,omitempty" yaml:"pending,omitempty"`
}

// DefaultHeartbeatTimeout is ESS's default lifecycle hook timeout.
const DefaultHeartbeatTimeout = 600 * time.Second

// PendingAction is a lifecycle action waiting for completion when the world loads.
type PendingAction struct {
	Token             string   `json:"token" yaml:"token"`
	InstanceIDs       []string `json:"instanceIds" yaml:"instanceIds"`
	ScalingActivityID string   `json:"scalingActivityId,omitempty" yaml:"scalingActivityId,omitempty"`
}

// Timing sets how long asynchronous ECS operations take.
type Timing struct {
	Attach fault.Duration `json:"attach" yaml:"attach"`
	Detach fault.Duration `json:"detach" yaml:"detach"`
	Jitter fault.Duration `json:"jitter,omitempty" yaml:"jitter,omitempty"`
	// AttachSpread, when set, draws each attach's duration from a log-normal
	// distribution instead of Attach plus Jitter; DetachSpread likewise for detaches.
	AttachSpread fault.Spread `json:"attachSpread,omitzero" yaml:"attachSpread,omitempty"`
	DetachSpread fault.Spread `json:"detachSpread,omitzero" yaml:"detachSpread,omitempty"`
	// Start and Stop are how long an instance stays Starting and Stopping when a scenario
	// starts or stops it without naming a duration.
	Start fault.Duration `json:"start,omitempty" yaml:"start,omitempty"`
	Stop  fault.Duration `json:"stop,omitempty" yaml:"stop,omitempty"`
}

// Throttle is a per-action rate limit. Empty Service or Action match any.
type Throttle struct {
	Service string  `json:"service,omitempty" yaml:"service,omitempty"`
	Action  string  `json:"action,omitempty" yaml:"action,omitempty"`
	QPS     float64 `json:"qps" yaml:"qps"`
	Burst   int     `json:"burst" yaml:"burst"`
}

// Timestamp is a world-file time: RFC 3339, or a Go duration relative to when the world is
// loaded into a Store ("-5m" is five minutes before). The zero Timestamp means "now".
type Timestamp struct {
	abs      time.Time
	rel      time.Duration
	relative bool
}

// At returns an absolute Timestamp.
func At(t time.Time) Timestamp { return Timestamp{abs: t} }

// Ago returns a Timestamp d before load time.
func Ago(d time.Duration) Timestamp { return Timestamp{rel: -d, relative: true} }

// Resolve returns the time the Timestamp denotes for a world loaded at now.
func (t Timestamp) Resolve(now time.Time) time.Time {
	switch {
	case t.relative:
		return now.Add(t.rel)
	case t.abs.IsZero():
		return now
	}
	return t.abs
}

// Time returns the absolute time, or the zero time for a relative Timestamp.
func (t Timestamp) Time() time.Time { return t.abs }

// IsZero reports whether t is unset.
func (t Timestamp) IsZero() bool { return !t.relative && t.abs.IsZero() }

// MarshalText implements encoding.TextMarshaler.
func (t Timestamp) MarshalText() ([]byte, error) {
	if t.relative {
		return []byte(t.rel.String()), nil
	}
	if t.abs.IsZero() {
		return nil, nil
	}
	return []byte(t.abs.UTC().Format(time.RFC3339)), nil
}

// UnmarshalText implements encoding.TextUnmarshaler.
func (t *Timestamp) UnmarshalText(b []byte) error {
	s := strings.TrimSpace(string(b))
	if s == "" || s == "now" {
		*t = Timestamp{}
		return nil
	}
	if v, err := time.Parse(time.RFC3339, s); err == nil {
		*t = Timestamp{abs: v}
		return nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("%q is neither an RFC 3339 time nor a duration relative to now", s)
	}
	*t = Timestamp{rel: d, relative: true}
	return nil
}

// Load reads and validates a world file. The format follows the extension (.json, or
// YAML otherwise); policy files are resolved relative to the world file.
func Load(path string) (*World, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("world: %w", err)
	}
	format := "yaml"
	if strings.EqualFold(filepath.Ext(path), ".json") {
		format = "json"
	}
	w, err := Parse(data, format, filepath.Dir(path))
	if err != nil {
		return nil, fmt.Errorf("world %s: %w", path, err)
	}
	return w, nil
}

// Parse reads and validates a world from data in format "yaml" or "json". baseDir
// resolves relative policy file paths.
func Parse(data []byte, format, baseDir string) (*World, error) {
	w := &World{}
	switch format {
	case "json":
		d := json.NewDecoder(bytes.NewReader(data))
		d.DisallowUnknownFields()
		if err := d.Decode(w); err != nil {
			return nil, fmt.Errorf("world: %w", err)
		}
	case "yaml":
		d := yaml.NewDecoder(bytes.NewReader(data))
		d.KnownFields(true)
		if err := d.Decode(w); err != nil && !errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("world: %w", err)
		}
	default:
		return nil, fmt.Errorf("world: unknown format %q", format)
	}
	if err := w.Validate(baseDir); err != nil {
		return nil, err
	}
	return w, nil
}

var (
	reDigits  = regexp.MustCompile(`^[0-9]+$`)
	reInst    = regexp.MustCompile(`^i-[a-z0-9]+$`)
	reENI     = regexp.MustCompile(`^eni-[a-z0-9]+$`)
	reVPC     = regexp.MustCompile(`^vpc-[a-z0-9]+$`)
	reVSwitch = regexp.MustCompile(`^vsw-[a-z0-9]+$`)
	reSG      = regexp.MustCompile(`^sg-[a-z0-9]+$`)
	reHook    = regexp.MustCompile(`^ash-[a-z0-9]+$`)
	reQueue   = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9-]{0,119}$`)
)

// IsInstanceID reports whether s is a well-formed instance id.
func IsInstanceID(s string) bool { return reInst.MatchString(s) }

// IsENIID reports whether s is a well-formed ENI id.
func IsENIID(s string) bool { return reENI.MatchString(s) }

type problems []error

func (p *problems) add(path string, format string, args ...any) {
	*p = append(*p, fmt.Errorf("%s: %s", path, fmt.Sprintf(format, args...)))
}

// Validate fills defaults, checks every field and builds the lookup indexes. Load and
// Parse call it; call it yourself after building a World in Go. Every problem is reported,
// each prefixed with the path of its field.
func (w *World) Validate(baseDir string) error {
	var p problems
	w.validateAccount(&p, baseDir)
	w.validateNetwork(&p)
	w.validateCompute(&p)
	w.validateServices(&p)
	if len(p) > 0 {
		return fmt.Errorf("world: invalid:\n%w", errors.Join(p...))
	}
	return nil
}

func (w *World) validateAccount(p *problems, baseDir string) {
	a := &w.Account
	if !reDigits.MatchString(a.ID) {
		p.add("account.id", "must be digits, got %q", a.ID)
	}
	switch a.Type {
	case "":
		a.Type = AccountEnterprise
	case AccountEnterprise, AccountIndividual, AccountUnverified:
	default:
		p.add("account.type", "must be enterprise, individual or unverified, got %q", a.Type)
	}
	if a.Quotas.ENIs < 0 || a.Quotas.AttachedENIs < 0 {
		p.add("account.quotas", "must not be negative")
	}

	w.policies = map[string]*ram.Policy{}
	for i := range w.Policies {
		d := &w.Policies[i]
		path := fmt.Sprintf("policies[%d]", i)
		if d.Name == "" {
			p.add(path+".name", "required")
		} else if _, dup := w.policies[d.Name]; dup {
			p.add(path+".name", "duplicate %q", d.Name)
		}
		doc, err := d.bytes(w, baseDir)
		if err != nil {
			p.add(path, "%v", err)
			continue
		}
		pol, err := ram.Parse(doc)
		if err != nil {
			p.add(path+".document", "%v", err)
			continue
		}
		pol.Name = d.Name
		w.policies[d.Name] = pol
	}

	names := map[string]bool{}
	keys := map[string]bool{}
	for i, pr := range w.Principals {
		path := fmt.Sprintf("principals[%d]", i)
		if pr.Name == "" {
			p.add(path+".name", "required")
		} else if names[pr.Name] {
			p.add(path+".name", "duplicate %q", pr.Name)
		}
		names[pr.Name] = true
		switch pr.Kind {
		case auth.KindAccount, auth.KindRAMUser:
		case auth.KindRole:
			if len(pr.AccessKeys) > 0 {
				p.add(path+".accessKeys", "a role has no long-term keys; it gets STS credentials")
			}
		default:
			p.add(path+".kind", "must be account, ram-user or role, got %q", pr.Kind)
		}
		for j, k := range pr.AccessKeys {
			kp := fmt.Sprintf("%s.accessKeys[%d]", path, j)
			if k.ID == "" || k.Secret == "" {
				p.add(kp, "id and secret are required")
			}
			if keys[k.ID] {
				p.add(kp+".id", "duplicate %q", k.ID)
			}
			keys[k.ID] = true
		}
		if pr.Kind == auth.KindAccount && len(pr.Policies) > 0 {
			p.add(path+".policies", "the account is always allowed; policies apply to ram-user and role only")
		}
		for j, name := range pr.Policies {
			if _, ok := w.policies[name]; !ok {
				p.add(fmt.Sprintf("%s.policies[%d]", path, j), "unknown policy %q", name)
			}
		}
	}
}

func (d PolicyDoc) bytes(w *World, baseDir string) ([]byte, error) {
	sources := 0
	for _, set := range []bool{d.File != "", d.Document != nil, d.Rendered != nil} {
		if set {
			sources++
		}
	}
	switch {
	case sources > 1:
		return nil, errors.New("document, file and rendered are mutually exclusive")
	case d.Rendered != nil:
		pol, err := deploy.RAMPolicy(d.Rendered.deployment(w))
		if err != nil {
			return nil, fmt.Errorf("rendered: %w", err)
		}
		return pol.JSON(), nil
	case d.File != "":
		path := d.File
		if !filepath.IsAbs(path) {
			path = filepath.Join(baseDir, path)
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("file: %w", err)
		}
		return b, nil
	case d.Document != nil:
		if s, ok := d.Document.(string); ok {
			return []byte(s), nil
		}
		b, err := json.Marshal(d.Document)
		if err != nil {
			return nil, fmt.Errorf("document: %w", err)
		}
		return b, nil
	}
	return nil, errors.New("one of document, file and rendered is required")
}

func (w *World) validateNetwork(p *problems) {
	w.regions = map[string]*Region{}
	w.zones = map[string]string{}
	if len(w.Regions) == 0 {
		p.add("regions", "at least one region is required")
	}
	for i := range w.Regions {
		r := &w.Regions[i]
		path := fmt.Sprintf("regions[%d]", i)
		if r.ID == "" {
			p.add(path+".id", "required")
		} else if _, dup := w.regions[r.ID]; dup {
			p.add(path+".id", "duplicate %q", r.ID)
		}
		w.regions[r.ID] = r
		if len(r.Zones) == 0 {
			p.add(path+".zones", "at least one zone is required")
		}
		for j, z := range r.Zones {
			if _, dup := w.zones[z]; dup || z == "" {
				p.add(fmt.Sprintf("%s.zones[%d]", path, j), "empty or duplicate zone %q", z)
			}
			w.zones[z] = r.ID
		}
	}

	w.vpcs = map[string]*VPC{}
	vpcPrefix := map[string]netip.Prefix{}
	for i := range w.VPCs {
		v := &w.VPCs[i]
		path := fmt.Sprintf("vpcs[%d]", i)
		if !reVPC.MatchString(v.ID) {
			p.add(path+".id", "must look like vpc-xxx, got %q", v.ID)
		} else if _, dup := w.vpcs[v.ID]; dup {
			p.add(path+".id", "duplicate %q", v.ID)
		}
		w.vpcs[v.ID] = v
		if _, ok := w.regions[v.Region]; !ok {
			p.add(path+".region", "unknown region %q", v.Region)
		}
		pf, err := netip.ParsePrefix(v.CIDR)
		if err != nil || !pf.Addr().Is4() {
			p.add(path+".cidr", "not an IPv4 CIDR block: %q", v.CIDR)
		}
		vpcPrefix[v.ID] = pf.Masked()
	}

	w.vswitches = map[string]*VSwitch{}
	for i := range w.VSwitches {
		s := &w.VSwitches[i]
		path := fmt.Sprintf("vswitches[%d]", i)
		if !reVSwitch.MatchString(s.ID) {
			p.add(path+".id", "must look like vsw-xxx, got %q", s.ID)
		} else if _, dup := w.vswitches[s.ID]; dup {
			p.add(path+".id", "duplicate %q", s.ID)
		}
		w.vswitches[s.ID] = s
		v, ok := w.vpcs[s.VPC]
		if !ok {
			p.add(path+".vpc", "unknown VPC %q", s.VPC)
		}
		region, ok := w.zones[s.Zone]
		if !ok {
			p.add(path+".zone", "unknown zone %q", s.Zone)
		} else if v != nil && region != v.Region {
			p.add(path+".zone", "zone %q is not in the VPC's region %q", s.Zone, v.Region)
		}
		pf, err := netip.ParsePrefix(s.CIDR)
		switch {
		case err != nil || !pf.Addr().Is4():
			p.add(path+".cidr", "not an IPv4 CIDR block: %q", s.CIDR)
		case pf.Bits() > 29:
			p.add(path+".cidr", "%q is smaller than a /29", s.CIDR)
		case v != nil && (!vpcPrefix[v.ID].Contains(pf.Addr()) || pf.Bits() < vpcPrefix[v.ID].Bits()):
			p.add(path+".cidr", "%q is not inside the VPC's %q", s.CIDR, v.CIDR)
		}
		if s.AvailableIPs != nil && *s.AvailableIPs < 0 {
			p.add(path+".availableIps", "must not be negative")
		}
	}

	w.sgs = map[string]*SecurityGroup{}
	for i := range w.SecurityGroups {
		g := &w.SecurityGroups[i]
		path := fmt.Sprintf("securityGroups[%d]", i)
		if !reSG.MatchString(g.ID) {
			p.add(path+".id", "must look like sg-xxx, got %q", g.ID)
		} else if _, dup := w.sgs[g.ID]; dup {
			p.add(path+".id", "duplicate %q", g.ID)
		}
		w.sgs[g.ID] = g
		if g.Type == "" {
			g.Type = SecurityGroupClassic
			if g.VPC != "" {
				g.Type = SecurityGroupVPC
			}
		}
		switch g.Type {
		case SecurityGroupVPC:
			if _, ok := w.vpcs[g.VPC]; !ok {
				p.add(path+".vpc", "unknown VPC %q", g.VPC)
			}
		case SecurityGroupClassic:
			if g.VPC != "" {
				p.add(path+".vpc", "a classic group has no VPC")
			}
		default:
			p.add(path+".type", "must be vpc or classic, got %q", g.Type)
		}
		if g.MaxInstances == 0 {
			g.MaxInstances = DefaultSecurityGroupCapacity
		} else if g.MaxInstances < 0 {
			p.add(path+".maxInstances", "must be positive")
		}
	}
}

func (w *World) validateCompute(p *problems) {
	w.types = map[string]*InstanceType{}
	for i := range w.InstanceTypes {
		t := &w.InstanceTypes[i]
		path := fmt.Sprintf("instanceTypes[%d]", i)
		if t.ID == "" {
			p.add(path+".id", "required")
		} else if _, dup := w.types[t.ID]; dup {
			p.add(path+".id", "duplicate %q", t.ID)
		}
		w.types[t.ID] = t
		if t.Family == "" {
			if i := strings.LastIndex(t.ID, "."); i > 0 {
				t.Family = t.ID[:i]
			}
		}
		if t.Generation == "" {
			p.add(path+".generation", "required (e.g. ecs-5)")
		}
		if t.ENIQuantity < 1 {
			p.add(path+".eniQuantity", "must be at least 1 (the primary ENI)")
		}
		if t.ENIPrivateIPQuantity < 1 {
			p.add(path+".eniPrivateIpAddressQuantity", "must be at least 1")
		}
		if t.ENIIPv6Quantity < 0 {
			p.add(path+".eniIpv6AddressQuantity", "must not be negative")
		}
		if t.NetworkCards == 0 {
			t.NetworkCards = 1
		} else if t.NetworkCards < 0 {
			p.add(path+".networkCardQuantity", "must be positive")
		}
	}

	ids := map[string]bool{}
	insts := map[string]*Instance{}
	for i := range w.Instances {
		in := &w.Instances[i]
		insts[in.ID] = in
		path := fmt.Sprintf("instances[%d]", i)
		if !reInst.MatchString(in.ID) {
			p.add(path+".id", "must look like i-xxx, got %q", in.ID)
		} else if ids[in.ID] {
			p.add(path+".id", "duplicate %q", in.ID)
		}
		ids[in.ID] = true
		if _, ok := w.types[in.Type]; !ok {
			p.add(path+".type", "unknown instance type %q", in.Type)
		}
		sw, ok := w.vswitches[in.VSwitch]
		switch {
		case !ok:
			p.add(path+".vswitch", "unknown vSwitch %q", in.VSwitch)
		case sw.Deleted && !in.Released:
			p.add(path+".vswitch", "vSwitch %q is deleted", in.VSwitch)
		case in.Zone == "":
			in.Zone = sw.Zone
		case in.Zone != sw.Zone:
			p.add(path+".zone", "zone %q differs from its vSwitch's zone %q", in.Zone, sw.Zone)
		}
		switch in.Status {
		case "":
			in.Status = StatusRunning
		case StatusPending, StatusRunning, StatusStarting, StatusStopping, StatusStopped:
		default:
			p.add(path+".status", "unknown instance status %q", in.Status)
		}
		for j, g := range in.SecurityGroups {
			sg, ok := w.sgs[g]
			switch {
			case !ok:
				p.add(fmt.Sprintf("%s.securityGroups[%d]", path, j), "unknown security group %q", g)
			case sw != nil && sg.Type == SecurityGroupVPC && sg.VPC != sw.VPC:
				p.add(fmt.Sprintf("%s.securityGroups[%d]", path, j), "group %q is in VPC %q, the instance in %q", g, sg.VPC, sw.VPC)
			}
		}
		checkTags(p, path+".tags", in.Tags)
		if in.PrivateIP != "" {
			a, err := netip.ParseAddr(in.PrivateIP)
			if err != nil || !a.Is4() {
				p.add(path+".privateIp", "not an IPv4 address: %q", in.PrivateIP)
			} else if sw != nil {
				if pf, err := netip.ParsePrefix(sw.CIDR); err == nil && !pf.Contains(a) {
					p.add(path+".privateIp", "%s is outside vSwitch %s (%s)", in.PrivateIP, sw.ID, sw.CIDR)
				}
			}
		}
		if in.PrimaryENI != "" && !reENI.MatchString(in.PrimaryENI) {
			p.add(path+".primaryEni", "must look like eni-xxx, got %q", in.PrimaryENI)
		}
		if in.OwnerID != "" && !reDigits.MatchString(in.OwnerID) {
			p.add(path+".ownerId", "must be an account id")
		}
	}

	enis := map[string]bool{}
	for i := range w.ENIs {
		e := &w.ENIs[i]
		path := fmt.Sprintf("enis[%d]", i)
		if !reENI.MatchString(e.ID) {
			p.add(path+".id", "must look like eni-xxx, got %q", e.ID)
		} else if enis[e.ID] {
			p.add(path+".id", "duplicate %q", e.ID)
		}
		enis[e.ID] = true
		sw, ok := w.vswitches[e.VSwitch]
		if !ok {
			p.add(path+".vswitch", "unknown vSwitch %q (list deleted ones with deleted: true)", e.VSwitch)
		}
		for j, g := range e.SecurityGroups {
			if _, ok := w.sgs[g]; !ok {
				p.add(fmt.Sprintf("%s.securityGroups[%d]", path, j), "unknown security group %q (list deleted ones with deleted: true)", g)
			}
		}
		if e.Type == "" {
			e.Type = ENISecondary
		}
		if e.Status == "" {
			e.Status = ENIAvailable
			if e.Type == ENIPrimary {
				e.Status = ENIInUse
			}
		}
		switch {
		case e.Type != ENIPrimary && e.Type != ENISecondary:
			p.add(path+".type", "must be Primary or Secondary, got %q", e.Type)
		case e.Status != ENIAvailable && e.Status != ENIInUse:
			p.add(path+".status", "must be Available or InUse in a world file, got %q", e.Status)
		case e.Status == ENIInUse && !ids[e.InstanceID]:
			p.add(path+".instanceId", "an InUse ENI needs a known instance, got %q", e.InstanceID)
		case e.Status == ENIAvailable && e.InstanceID != "":
			p.add(path+".instanceId", "an Available ENI has no instance")
		case e.Type == ENIPrimary && e.Status != ENIInUse:
			p.add(path+".status", "a primary ENI is always InUse")
		case e.Status == ENIInUse && sw != nil:
			in := insts[e.InstanceID]
			isw, ok := w.vswitches[in.VSwitch]
			switch {
			case !ok:
			case e.Type == ENIPrimary && e.VSwitch != in.VSwitch:
				p.add(path+".vswitch", "a primary ENI is on its instance's vSwitch %s", in.VSwitch)
			case sw.Zone != isw.Zone || sw.VPC != isw.VPC:
				p.add(path+".vswitch", "an InUse ENI is in its instance's zone and VPC (%s, %s)", isw.Zone, isw.VPC)
			}
		}
		for j, ip := range e.PrivateIPs {
			a, err := netip.ParseAddr(ip)
			if err != nil || !a.Is4() {
				p.add(fmt.Sprintf("%s.privateIps[%d]", path, j), "not an IPv4 address: %q", ip)
			} else if sw != nil {
				if pf, err := netip.ParsePrefix(sw.CIDR); err == nil && !pf.Contains(a) {
					p.add(fmt.Sprintf("%s.privateIps[%d]", path, j), "%s is outside vSwitch %s (%s)", ip, sw.ID, sw.CIDR)
				}
			}
		}
		for j, ip := range e.IPv6 {
			if a, err := netip.ParseAddr(ip); err != nil || !a.Is6() {
				p.add(fmt.Sprintf("%s.ipv6[%d]", path, j), "not an IPv6 address: %q", ip)
			}
		}
		checkTags(p, path+".tags", e.Tags)
		if e.OwnerID != "" && !reDigits.MatchString(e.OwnerID) {
			p.add(path+".ownerId", "must be an account id")
		}
	}
}

func checkTags(p *problems, path string, tags map[string]string) {
	if len(tags) > 20 {
		p.add(path, "at most 20 tags")
	}
	for k := range tags {
		if k == "" || strings.HasPrefix(k, "aliyun") || strings.HasPrefix(k, "acs:") {
			p.add(path, "invalid tag key %q", k)
		}
	}
}

func (w *World) validateServices(p *problems) {
	w.hooks = map[string]*LifecycleHook{}
	tokens := map[string]bool{}
	for i := range w.LifecycleHooks {
		h := &w.LifecycleHooks[i]
		path := fmt.Sprintf("lifecycleHooks[%d]", i)
		if !reHook.MatchString(h.ID) {
			p.add(path+".id", "must look like ash-xxx, got %q", h.ID)
		} else if _, dup := w.hooks[h.ID]; dup {
			p.add(path+".id", "duplicate %q", h.ID)
		}
		w.hooks[h.ID] = h
		if h.ScalingGroupID == "" {
			p.add(path+".scalingGroupId", "required")
		}
		if h.Region == "" && len(w.Regions) > 0 {
			h.Region = w.Regions[0].ID
		} else if _, ok := w.regions[h.Region]; !ok {
			p.add(path+".region", "unknown region %q", h.Region)
		}
		switch h.Transition {
		case "":
			h.Transition = ScaleOut
		case ScaleOut, ScaleIn:
		default:
			p.add(path+".transition", "must be SCALE_OUT or SCALE_IN, got %q", h.Transition)
		}
		switch h.DefaultResult {
		case "":
			h.DefaultResult = ResultContinue
		case ResultContinue, ResultAbandon, ResultRollback:
		default:
			p.add(path+".defaultResult", "must be CONTINUE, ABANDON or ROLLBACK, got %q", h.DefaultResult)
		}
		if h.HeartbeatTimeout == 0 {
			h.HeartbeatTimeout = fault.Duration(DefaultHeartbeatTimeout)
		} else if h.HeartbeatTimeout < 0 {
			p.add(path+".heartbeatTimeout", "must be positive")
		}
		for j, pa := range h.Pending {
			pp := fmt.Sprintf("%s.pending[%d]", path, j)
			if pa.Token == "" || tokens[pa.Token] {
				p.add(pp+".token", "empty or duplicate token %q", pa.Token)
			}
			tokens[pa.Token] = true
			if len(pa.InstanceIDs) == 0 {
				p.add(pp+".instanceIds", "at least one instance")
			}
		}
	}
	queues := map[string]bool{}
	for i, q := range w.Queues {
		if !reQueue.MatchString(q) || queues[q] {
			p.add(fmt.Sprintf("queues[%d]", i), "invalid or duplicate queue name %q", q)
		}
		queues[q] = true
	}
	if w.Timing.Attach < 0 || w.Timing.Detach < 0 || w.Timing.Jitter < 0 || w.Timing.Start < 0 || w.Timing.Stop < 0 {
		p.add("timing", "durations must not be negative")
	}
	for _, sp := range []struct {
		name   string
		spread fault.Spread
	}{{"attachSpread", w.Timing.AttachSpread}, {"detachSpread", w.Timing.DetachSpread}} {
		if sp.spread.IsZero() {
			continue
		}
		for _, err := range sp.spread.Problems() {
			path, msg, _ := strings.Cut(err.Error(), ": ")
			p.add("timing."+sp.name+"."+path, "%s", msg)
		}
	}
	for _, err := range w.Faults.Problems() {
		path, msg, _ := strings.Cut(err.Error(), ": ")
		p.add("faults."+path, "%s", msg)
	}
	for i, t := range w.Throttling {
		if t.QPS <= 0 || t.Burst < 1 {
			p.add(fmt.Sprintf("throttling[%d]", i), "qps must be positive and burst at least 1")
		}
	}
}

// Policy returns the parsed policy with the given name.
func (w *World) Policy(name string) (*ram.Policy, bool) {
	p, ok := w.policies[name]
	return p, ok
}

// Region returns the region with the given id.
func (w *World) Region(id string) (*Region, bool) {
	r, ok := w.regions[id]
	return r, ok
}

// ZoneRegion returns the region of a zone.
func (w *World) ZoneRegion(zone string) (string, bool) {
	r, ok := w.zones[zone]
	return r, ok
}

// VPC returns the VPC with the given id.
func (w *World) VPC(id string) (*VPC, bool) {
	v, ok := w.vpcs[id]
	return v, ok
}

// VSwitch returns the vSwitch with the given id, deleted ones included.
func (w *World) VSwitch(id string) (*VSwitch, bool) {
	s, ok := w.vswitches[id]
	return s, ok
}

// SecurityGroup returns the security group with the given id, deleted ones included.
func (w *World) SecurityGroup(id string) (*SecurityGroup, bool) {
	g, ok := w.sgs[id]
	return g, ok
}

// InstanceType returns the instance type with the given id.
func (w *World) InstanceType(id string) (*InstanceType, bool) {
	t, ok := w.types[id]
	return t, ok
}

// LifecycleHook returns the lifecycle hook with the given id.
func (w *World) LifecycleHook(id string) (*LifecycleHook, bool) {
	h, ok := w.hooks[id]
	return h, ok
}

// PrincipalNamed returns the auth identity of the principal with the given name.
func (w *World) PrincipalNamed(name string) (auth.Principal, bool) {
	for _, p := range w.Principals {
		if p.Name == name {
			return auth.Principal{Name: p.Name, Kind: p.Kind, AccountID: w.Account.ID}, true
		}
	}
	return auth.Principal{}, false
}

// Identities builds the auth store (the account, every long-term key) and the RAM
// authorizer (every principal's policies) the world describes. Roles get their STS
// credentials later, from auth.Store.AssumeRole. now is the clock; nil means time.Now.
func (w *World) Identities(now func() time.Time) (*auth.Store, *ram.Authorizer, error) {
	st := auth.NewStore(now)
	st.AddAccount(auth.Account{ID: w.Account.ID, Type: w.Account.Type, Closed: w.Account.Closed})
	az := ram.NewAuthorizer()
	for _, pr := range w.Principals {
		p := auth.Principal{Name: pr.Name, Kind: pr.Kind, AccountID: w.Account.ID}
		for _, k := range pr.AccessKeys {
			if err := st.AddKey(auth.Key{ID: k.ID, Secret: k.Secret, Disabled: k.Disabled, Principal: p}); err != nil {
				return nil, nil, fmt.Errorf("world: principal %s: %w", pr.Name, err)
			}
		}
		for _, name := range pr.Policies {
			pol, ok := w.policies[name]
			if !ok {
				return nil, nil, fmt.Errorf("world: principal %s: unknown policy %q (was the world validated?)", pr.Name, name)
			}
			az.Attach(p, pol)
		}
	}
	return st, az, nil
}
