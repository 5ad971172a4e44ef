// Package deploy holds what deploying enipool needs besides s.yaml: the function's RAM policy
// (ram-policy.json), the trust policy of its role (trust-policy.json) and their README. It
// has no code; its tests check s.yaml and the policy against the function's configuration,
// the fc3 props schema, Serverless Devs and the local cloud's RAM engine.
package deploy
