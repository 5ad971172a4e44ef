package world

import (
	"fmt"
	"time"

	"github.com/enipool/enipool/deploy"
	"github.com/enipool/enipool/localcloud/auth"
	"github.com/enipool/enipool/localcloud/fault"
)

// GenerateOptions shape a generated world. Zero fields take the defaults in brackets.
type GenerateOptions struct {
	AccountID string // [1234567890123456]
	Region    string // [cn-hangzhou]
	Zones     int    // zones, lettered h, i, j, ... [2]
	Instances int    // instances, spread round-robin over the zones, all tagged with the pool tag [500]
	Pool      int    // Available pool ENIs, spread round-robin over the zones [Instances]
	PoolKey   string // pool tag key [enipool]
	PoolValue string // pool tag value [web]
	// InstanceType is the type of every instance [ecs.g7.large: 3 ENIs, 10 IPv4, 10 IPv6].
	InstanceType InstanceType
	Attach       time.Duration // [1s]
	Detach       time.Duration // [500ms]
	Jitter       time.Duration // [0]
	Faults       fault.Plan
	Throttling   []Throttle
	// RootKeyID and RootSecret are the account's AccessKey [LTAIgeneratedroot / generated-root-secret].
	RootKeyID, RootSecret string
	// Pools are the pool tag values the function's rendered policy serves [PoolValue]; a
	// caller that retags instances and ENIs lists the values it uses.
	Pools []string
	// FunctionPolicy is the RAM policy document of the role "enipool-fn" [the policy `make
	// policy` renders for the world (deploy.RAMPolicy): its region and account, PoolKey and
	// Pools, any scaling group (a generated world has none), the dead-letter queue
	// enipool-dlq, no warm target]. A test that needs another says so by name, with its
	// reason beside it: UnrestrictedPolicy, or a document of its own.
	FunctionPolicy string
}

// UnrestrictedPolicy grants every ECS, ESS and MNS action on every resource: for a test whose
// subject is the function's own checks, which the rendered policy's conditions would hide (RAM
// would refuse the call before the function's check was tested). Name why where it is used.
const UnrestrictedPolicy = `{"Version":"1","Statement":[{"Effect":"Allow","Action":["ecs:*","ess:*","mns:*"],"Resource":"*"}]}`

// Generate builds a large world for benchmarks and tests: one VPC, one /16 vSwitch per zone,
// one security group, Running instances started a minute ago, a pool of tagged Available
// ENIs, and the function's role under the policy rendered for the world (FunctionPolicy).
// Instance ids are i-gen%09d, pool ENI ids eni-gen%09d.
func Generate(o GenerateOptions) (*World, error) {
	def := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	defs := func(v *string, d string) {
		if *v == "" {
			*v = d
		}
	}
	defs(&o.AccountID, "1234567890123456")
	defs(&o.Region, "cn-hangzhou")
	def(&o.Zones, 2)
	def(&o.Instances, 500)
	def(&o.Pool, o.Instances)
	defs(&o.PoolKey, "enipool")
	defs(&o.PoolValue, "web")
	defs(&o.RootKeyID, "LTAIgeneratedroot")
	defs(&o.RootSecret, "generated-root-secret")
	if len(o.Pools) == 0 {
		o.Pools = []string{o.PoolValue}
	}
	if o.InstanceType.ID == "" {
		o.InstanceType = InstanceType{ID: "ecs.g7.large", Family: "ecs.g7", Generation: "ecs-6", CPU: 2, MemoryGiB: 8,
			ENIQuantity: 3, ENIPrivateIPQuantity: 10, ENIIPv6Quantity: 10}
	}
	if o.Attach == 0 {
		o.Attach = time.Second
	}
	if o.Detach == 0 {
		o.Detach = 500 * time.Millisecond
	}
	if o.Zones > 19 {
		return nil, fmt.Errorf("world: Generate: at most 19 zones, got %d", o.Zones)
	}

	fnPolicy := PolicyDoc{Name: "enipool-fn", Rendered: &RenderedPolicy{Region: o.Region, TagKey: o.PoolKey, Pools: o.Pools,
		ScalingGroups: []string{deploy.Any}, DeadLetterQueue: "enipool-dlq"}}
	if o.FunctionPolicy != "" {
		fnPolicy = PolicyDoc{Name: "enipool-fn", Document: o.FunctionPolicy}
	}
	w := &World{
		Account: Account{ID: o.AccountID, Type: AccountEnterprise},
		Principals: []Principal{
			{Name: "root", Kind: auth.KindAccount, AccessKeys: []AccessKey{{ID: o.RootKeyID, Secret: o.RootSecret}}},
			{Name: "enipool-fn", Kind: auth.KindRole, Policies: []string{"enipool-fn"}},
		},
		Policies:       []PolicyDoc{fnPolicy},
		VPCs:           []VPC{{ID: "vpc-gen0001", Region: o.Region, CIDR: "10.0.0.0/8"}},
		SecurityGroups: []SecurityGroup{{ID: "sg-gen0001", VPC: "vpc-gen0001", MaxInstances: 65536}},
		InstanceTypes:  []InstanceType{o.InstanceType},
		Queues:         []string{"enipool-dlq", "enipool-work"},
		Timing:         Timing{Attach: fault.Duration(o.Attach), Detach: fault.Duration(o.Detach), Jitter: fault.Duration(o.Jitter)},
		Throttling:     o.Throttling,
		Faults:         o.Faults,
	}
	region := Region{ID: o.Region}
	var vsws []string
	for z := range o.Zones {
		zone := fmt.Sprintf("%s-%c", o.Region, 'h'+z)
		region.Zones = append(region.Zones, zone)
		vsw := fmt.Sprintf("vsw-gen%04d", z+1)
		vsws = append(vsws, vsw)
		w.VSwitches = append(w.VSwitches, VSwitch{ID: vsw, VPC: "vpc-gen0001", Zone: zone, CIDR: fmt.Sprintf("10.%d.0.0/16", z+1)})
	}
	w.Regions = []Region{region}
	for i := range o.Instances {
		w.Instances = append(w.Instances, Instance{
			ID:             fmt.Sprintf("i-gen%09d", i+1),
			Type:           o.InstanceType.ID,
			VSwitch:        vsws[i%o.Zones],
			Status:         StatusRunning,
			StartTime:      Ago(time.Minute),
			CreationTime:   Ago(time.Minute),
			Tags:           map[string]string{o.PoolKey: o.PoolValue},
			SecurityGroups: []string{"sg-gen0001"},
		})
	}
	for i := range o.Pool {
		w.ENIs = append(w.ENIs, ENI{
			ID:             fmt.Sprintf("eni-gen%09d", i+1),
			VSwitch:        vsws[i%o.Zones],
			SecurityGroups: []string{"sg-gen0001"},
			Tags:           map[string]string{o.PoolKey: o.PoolValue},
			CreationTime:   Ago(time.Hour),
		})
	}
	if err := w.Validate("."); err != nil {
		return nil, err
	}
	return w, nil
}
