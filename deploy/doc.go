// Package deploy renders the function role's RAM policy and trust policy for a deployment
// (RAMPolicy, TrustPolicy): pinned to its region and account, the pools and scaling groups it
// serves, and the warm target's statements only when the warm target is configured. The
// command deploy/cmd/policy (make policy) renders them from s.yaml's values; the local
// cloud's worlds render theirs from their own (localcloud/world, policies[].rendered).
// ram-policy.json and trust-policy.json here are the example rendered for the demo world
// (make policy-example). The package's tests check s.yaml and the policy against the
// function's configuration, the fc3 props schema, Serverless Devs and the local cloud's RAM
// engine. It imports nothing outside the standard library.
package deploy
