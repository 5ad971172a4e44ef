package localcloud_test

import (
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/aliyun/alibaba-cloud-sdk-go/sdk"
	"github.com/aliyun/alibaba-cloud-sdk-go/sdk/auth/credentials"
	sdkecs "github.com/aliyun/alibaba-cloud-sdk-go/services/ecs"

	"github.com/enipool/enipool/localcloud"
	"github.com/enipool/enipool/localcloud/world"
)

// TestDebugStateCountsRealism runs the realistic world, attaches through the SDK and reads
// /debug/state: the attach is listed with its true duration, and the realism counters are
// there for a harness to report, equal to the Go API's.
func TestDebugStateCountsRealism(t *testing.T) {
	w, err := world.Load("worlds/realistic.yaml")
	if err != nil {
		t.Fatal(err)
	}
	c, err := localcloud.Start(w, localcloud.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	k, err := c.RootKey()
	if err != nil {
		t.Fatal(err)
	}
	cl, err := sdkecs.NewClientWithOptions(c.Region, sdk.NewConfig().WithScheme("HTTP").WithAutoRetry(false).WithTimeout(2*time.Second),
		credentials.NewStaticAKCredentialsProvider(k.ID, k.Secret))
	if err != nil {
		t.Fatal(err)
	}
	cl.Domain = c.ECSEndpoint
	r := sdkecs.CreateAttachNetworkInterfaceRequest()
	r.InstanceId, r.NetworkInterfaceId = "i-bp1demo00000000001", "eni-bp1demopoolh01"
	// The answer may be lost after the action (the world says so); the attach is applied
	// either way.
	_, _ = cl.AttachNetworkInterface(r)
	d := sdkecs.CreateDescribeNetworkInterfacesRequest()
	d.InstanceId = "i-bp1demo00000000001"
	for range 20 {
		if _, err := cl.DescribeNetworkInterfaces(d); err != nil {
			t.Fatal(err)
		}
	}

	resp, err := http.Get(c.DebugURL + "/state")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var st struct {
		World struct {
			Operations []world.Operation `json:"operations"`
		} `json:"world"`
		Realism *struct {
			StaleReads        *int `json:"staleReads"`
			FaultsAfterAction *int `json:"faultsAfterAction"`
		} `json:"realism"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		t.Fatal(err)
	}
	ops := st.World.Operations
	if len(ops) != 1 || ops[0].Op != "attach" || ops[0].ENI != "eni-bp1demopoolh01" || ops[0].Duration <= 0 {
		t.Fatalf("operations %+v", ops)
	}
	if st.Realism == nil || st.Realism.StaleReads == nil || st.Realism.FaultsAfterAction == nil {
		t.Fatal("/debug/state has no realism counters")
	}
	if want := c.Faults.Stats(); *st.Realism.StaleReads != want.StaleReads || *st.Realism.FaultsAfterAction != want.FaultsAfterAction {
		t.Fatalf("debug %d/%d, Go API %+v", *st.Realism.StaleReads, *st.Realism.FaultsAfterAction, want)
	}
	// The attach is younger than the staleness bound while the describes run: some of
	// 20 reads lagging up to 1s miss it (seeded, so always the same ones).
	if *st.Realism.StaleReads == 0 {
		t.Fatal("no stale read counted in the realistic world")
	}
}
