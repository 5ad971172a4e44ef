// Command sdkfloor is the cold-start scenario's second baseline: the least a function needs
// to do what enipool's first invocation needs the SDKs for, and nothing of enipool. Under the
// go1 runtime, each invocation builds an alibaba-cloud-sdk-go ECS client and an
// aliyun-mns-go-sdk client from the invocation's STS credentials (as enipool's connector
// does, with the same ENIPOOL_* endpoint variables) and makes one ECS call,
// DescribeInstances of the instance named by the payload ({"instanceId": ...}), over the
// configured scheme. It sends nothing to MNS: an attach does not.
//
// hello (localcloud/fcrt/testdata/hello) is the function without the SDKs; this is the
// function with them; enipool against both says what the SDKs cost and what enipool adds.
// Keep it minimal: every line here is counted in the baseline.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"strings"

	"github.com/aliyun/alibaba-cloud-sdk-go/sdk"
	"github.com/aliyun/alibaba-cloud-sdk-go/sdk/auth/credentials"
	"github.com/aliyun/alibaba-cloud-sdk-go/services/ecs"
	alimns "github.com/aliyun/aliyun-mns-go-sdk"
	"github.com/aliyun/fc-runtime-go-sdk/fc"
	"github.com/aliyun/fc-runtime-go-sdk/fccontext"

	"github.com/enipool/enipool/internal/mnsdial"
)

func main() {
	fc.Start(func(ctx context.Context, in struct {
		InstanceID string `json:"instanceId"`
	}) (int, error) {
		fcc, ok := fccontext.FromContext(ctx)
		if !ok {
			return 0, errors.New("sdkfloor: no FC context")
		}
		k := fcc.Credentials
		c := &ecs.Client{}
		if err := c.InitWithOptions(fcc.Region, sdk.NewConfig().WithScheme(strings.ToUpper(os.Getenv("ENIPOOL_API_SCHEME"))).WithAutoRetry(false),
			credentials.NewStsTokenCredential(k.AccessKeyId, k.AccessKeySecret, k.SecurityToken)); err != nil {
			return 0, err
		}
		c.Domain = os.Getenv("ENIPOOL_ECS_ENDPOINT")
		endpoint := strings.NewReplacer("{account}", fcc.AccountId, "{region}", fcc.Region).Replace(os.Getenv("ENIPOOL_MNS_ENDPOINT"))
		mns := alimns.NewAliMNSClientWithConfig(alimns.AliMNSClientConfig{EndPoint: endpoint, TimeoutSecond: 10,
			AccessKeyId: k.AccessKeyId, AccessKeySecret: k.AccessKeySecret, Token: k.SecurityToken})
		mns.SetTransport(mnsdial.Transport(os.Getenv("ENIPOOL_MNS_DIAL_ADDR"), 0))
		ids, _ := json.Marshal([]string{in.InstanceID}) // a []string always marshals
		req := ecs.CreateDescribeInstancesRequest()
		req.InstanceIds = string(ids)
		resp, err := c.DescribeInstances(req)
		if err != nil {
			return 0, err
		}
		return len(resp.Instances.Instance), nil
	})
}
