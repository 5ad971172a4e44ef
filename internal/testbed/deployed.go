package testbed

import (
	"maps"

	"github.com/enipool/enipool/localcloud"
	"github.com/enipool/enipool/localcloud/trigger"
)

// Deployed returns the function as a project (s.yaml, rendered by package trigger) deploys
// it: its environment, timeout and asyncInvokeConfig; the dead-letter queue is the onFailure
// destination's queue, else ENIPOOL_DLQ_QUEUE, else DeadLetterQueue. The variables that aim
// the function at the local cloud (FunctionEnv) are left out of the environment, so that the
// cloud's endpoints win over the project's. Nothing is added: in particular no
// ENIPOOL_ATTACH_TIME, since the function must find the world's attach times itself. The
// caller sets Binary, Logs and the FC limits.
func Deployed(spec trigger.FunctionSpec) Function {
	f := Function{Env: maps.Clone(spec.Env), Timeout: spec.Timeout()}
	if f.Env == nil {
		f.Env = map[string]string{}
	}
	if q := spec.Env["ENIPOOL_DLQ_QUEUE"]; q != "" {
		f.DeadLetterQueue = q
	}
	spec.Apply(&f.Async, &f.DeadLetterQueue)
	if f.DeadLetterQueue == "" {
		f.DeadLetterQueue = DeadLetterQueue
	}
	for k := range FunctionEnv(&localcloud.Cloud{}, "") {
		delete(f.Env, k)
	}
	return f
}
