package ecs_test

import (
	"errors"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/aliyun/alibaba-cloud-sdk-go/sdk"
	"github.com/aliyun/alibaba-cloud-sdk-go/sdk/auth/credentials"
	sdkerrors "github.com/aliyun/alibaba-cloud-sdk-go/sdk/errors"
	sdkecs "github.com/aliyun/alibaba-cloud-sdk-go/services/ecs"

	"github.com/enipool/enipool/localcloud/auth"
	"github.com/enipool/enipool/localcloud/ecs"
	"github.com/enipool/enipool/localcloud/fault"
	"github.com/enipool/enipool/localcloud/ram"
	"github.com/enipool/enipool/localcloud/record"
	"github.com/enipool/enipool/localcloud/rpc"
	"github.com/enipool/enipool/localcloud/world"
)

// env is an ECS emulator on an httptest server, over testdata/world.yaml.
type env struct {
	w      *world.World
	store  *world.Store
	auth   *auth.Store
	ram    *ram.Authorizer
	faults *fault.Injector
	rec    *record.Recorder
	host   string
}

var keys = map[string][2]string{
	"root":  {"LTAIroot", "root-secret"},
	"alice": {"LTAIalice", "alice-secret"},
	"dev":   {"LTAIdev", "dev-secret"},
}

func newEnv(t *testing.T, mutate func(*world.World)) *env {
	t.Helper()
	return newEnvClock(t, nil, mutate)
}

// newEnvClock is newEnv with the store and injector on clock (nil: time.Now).
func newEnvClock(t *testing.T, clock func() time.Time, mutate func(*world.World)) *env {
	t.Helper()
	w, err := world.Load("testdata/world.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if mutate != nil {
		mutate(w)
		if err := w.Validate("testdata"); err != nil {
			t.Fatal(err)
		}
	}
	store, err := world.NewStore(w, clock)
	if err != nil {
		t.Fatal(err)
	}
	as, az, err := w.Identities(nil)
	if err != nil {
		t.Fatal(err)
	}
	e := &env{w: w, store: store, auth: as, ram: az, faults: fault.New(w.Faults, clock), rec: &record.Recorder{}}
	svc, err := ecs.New(ecs.Config{Store: store, Auth: as, RAM: az, Faults: e.faults, Recorder: e.rec,
		Limiter: rpc.NewLimiter(w.Throttling)})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(svc)
	t.Cleanup(srv.Close)
	e.host = strings.TrimPrefix(srv.URL, "http://")
	return e
}

// client returns an SDK client signing with a principal's long-term key.
func (e *env) client(t *testing.T, principal string) *sdkecs.Client {
	t.Helper()
	k := keys[principal]
	return e.clientWith(t, credentials.NewStaticAKCredentialsProvider(k[0], k[1]))
}

// roleClient returns an SDK client with fresh STS credentials of a role.
func (e *env) roleClient(t *testing.T, role string) *sdkecs.Client {
	t.Helper()
	p, ok := e.w.PrincipalNamed(role)
	if !ok {
		t.Fatalf("no principal %s", role)
	}
	k := e.auth.AssumeRole(p, time.Hour)
	return e.clientWith(t, credentials.NewStaticSTSCredentialsProvider(k.ID, k.Secret, k.Token))
}

func (e *env) clientWith(t *testing.T, p credentials.CredentialsProvider) *sdkecs.Client {
	t.Helper()
	c, err := sdkecs.NewClientWithOptions("cn-hangzhou", sdk.NewConfig().WithAutoRetry(false).WithTimeout(10*time.Second), p)
	if err != nil {
		t.Fatal(err)
	}
	c.Domain = e.host
	return c
}

func (e *env) eni(t *testing.T, id string) world.ENI {
	t.Helper()
	x, ok := e.store.ENI(id)
	if !ok {
		t.Fatalf("no ENI %s", id)
	}
	return x
}

// waitStatus polls the store until the ENI has the status; it bounds the wait generously
// and asserts nothing about how long it took.
func (e *env) waitStatus(t *testing.T, id, status string) world.ENI {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		x := e.eni(t, id)
		if x.Status == status {
			return x
		}
		if time.Now().After(deadline) {
			t.Fatalf("ENI %s is %s, never became %s", id, x.Status, status)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func asServerError(t *testing.T, err error) *sdkerrors.ServerError {
	t.Helper()
	var se *sdkerrors.ServerError
	if !errors.As(err, &se) {
		t.Fatalf("err = %v (%T), want *errors.ServerError", err, err)
	}
	return se
}

func wantCode(t *testing.T, err error, code string, status int) *sdkerrors.ServerError {
	t.Helper()
	se := asServerError(t, err)
	if se.ErrorCode() != code || se.HttpStatus() != status {
		t.Fatalf("got %s %d (%s), want %s %d", se.ErrorCode(), se.HttpStatus(), se.Message(), code, status)
	}
	return se
}

func attachReq(inst, eni string) *sdkecs.AttachNetworkInterfaceRequest {
	r := sdkecs.CreateAttachNetworkInterfaceRequest()
	r.InstanceId = inst
	r.NetworkInterfaceId = eni
	return r
}

func detachReq(inst, eni string) *sdkecs.DetachNetworkInterfaceRequest {
	r := sdkecs.CreateDetachNetworkInterfaceRequest()
	r.InstanceId = inst
	r.NetworkInterfaceId = eni
	return r
}
