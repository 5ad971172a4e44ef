// Package e2e holds enipool's end-to-end tests: the built function binary runs under the
// local FC runtime, against the local cloud's ECS, ESS and MNS, through the real SDKs. The
// tests assert what the cloud looks like afterwards (ENIs, queues, lifecycle actions), not
// just that calls returned.
package e2e
