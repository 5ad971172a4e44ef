# enipool: every-day commands. `make help` lists them.
# On a fresh machine: `make run` (the function against the local cloud), `make test` (everything).

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

GO        ?= go
EVENT     ?= events/ecs-running.json
WORLD     ?= localcloud/worlds/demo.yaml
FUZZTIME  ?= 60s
SCENARIO  ?= localcloud/scenarios/scaleout-200.yaml
SEEDS     ?= 100000
START     ?= 1
BIN       := dist/main
DEMO      := $(GO) run ./internal/cmd/demo
GOFILES    = $(shell git ls-files --cached --others --exclude-standard '*.go')
# Every build without the race detector compiles as `make build` does (static, trimmed paths):
# go vet, the simulation's run, and, inside the tests, the function the soak, the scenarios and
# the bench run (testbed.BuildFunction) and localcloud's probe functions. One build-cache key
# for all of them: on a cold cache each package is compiled once without -race, not once per
# flavour (cgo or not, trimmed or not). staticcheck loads packages through go list -export, so
# it runs under the same settings and reads go vet's compile too.
# GOFLAGS keeps what go env says (the environment or go env -w) and adds -trimpath.
STATICENV  = CGO_ENABLED=0 GOFLAGS="$(strip $(shell $(GO) env GOFLAGS) -trimpath)"
STATICGO   = $(STATICENV) $(GO)

.PHONY: help build test gotest unit sim burst run invoke localcloud scenario bench lint vet fuzz deploy remote-invoke clean docs deps policy policy-example

help: ## List the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-14s %s\n", $$1, $$2}'

deps: ## Download the Go modules (what every other target needs)
	$(GO) mod download

build: deps ## Build the function: a static linux/amd64 binary at dist/main (FC go1 runtime, handler "main")
	CGO_ENABLED=0 GOOS=linux GOARCH=amd64 $(GO) build -trimpath -ldflags="-s -w" -o $(BIN) .

# go vet runs first, alone: it compiles every package the way the tests' own non-race builds
# (the soak's and the scenarios' function, the probe functions) want them, so those find them
# in the build cache. Go's cache shares nothing between builds running at the same moment: run
# side by side on a cold cache, they compiled the same packages (the ECS SDK among them) two
# and three times over. Then the tests and the rest of lint run side by side.
test: deps ## Everything CI runs: lint and every test with the race detector (go vet first, then the rest side by side; output grouped)
	@$(MAKE) --no-print-directory vet
	@$(MAKE) --no-print-directory -j2 -O gotest lint VETTED=1

# Under -race the end-to-end tests build the function with -race too (e2e/race_test.go), so a
# data race in the function fails them; `make build` stays the static binary FC runs. Under
# -race the simulation (package sim) plays 200 fleets; the second line plays its 10,000
# without the race detector and prints the count, the seeds and the time.
gotest: deps ## Every test with the race detector, the function under test included (what `make test` runs beside lint)
	$(GO) test -race -count=1 -timeout 20m ./...
	$(STATICGO) test -count=1 -run '^TestSim$$' -v ./sim

unit: ## Only the quick tests (no end-to-end, no soak)
	$(GO) test -race -count=1 -short ./...

# The deterministic simulation (package sim): seeded fleets in virtual time, SEEDS of them.
sim: deps ## Simulated fleets: make sim SEEDS=1000000 [START=1]; prints the count, seeds, time and failing seeds
	$(STATICGO) test -count=1 -run '^TestSim$$' -timeout 0 -v ./sim -sim.n=$(SEEDS) -sim.start=$(START)

run: deps ## The main job: the function handles every sample event against the local cloud's demo world
	$(DEMO) run -world $(WORLD) -events events

invoke: deps ## One event against the local cloud: make invoke EVENT=events/direct.json (JSON result on stdout)
	@$(DEMO) invoke -world $(WORLD) -event $(EVENT)

localcloud: deps ## Run the local cloud standalone (endpoints and credentials printed; Ctrl-C stops it)
	$(DEMO) serve -world $(WORLD)

scenario: deps ## A scenario through s.yaml's triggers: make scenario SCENARIO=FILE (default the 200-instance scale-out); JSON report last
	$(DEMO) run -scenario $(SCENARIO)

# The simulated 500-launch burst (sim/burst.go): each variant over BURST_SEEDS seeds, in virtual
# time; one line of figures per run.
BURST_SEEDS ?= 3
burst: deps ## Simulated 500-launch burst, rate controls x FC instance limits x batching: make burst [BURST_SEEDS=3]
	$(STATICGO) test -count=1 -run '^TestBurstMeasure$$' -timeout 0 -v ./sim -burst.measure -burst.seeds=$(BURST_SEEDS) | grep -E 'seed=|^(ok|FAIL|---)'

bench: deps ## The benchmark: prints a table, writes bench/results.json and the charts in docs/bench
	$(GO) run ./bench -out bench/results.json -charts docs/bench

# staticcheck runs under nice: beside the tests (make test) it takes the CPU they leave idle
# while they wait on the local cloud's timing, instead of slowing their compile.
# VETTED=1 (make test passes it) skips the vet prerequisite make test has just run.
lint: deps $(if $(VETTED),,vet) ## gofmt, go vet, staticcheck
	@unformatted=$$(gofmt -l $(GOFILES)); if [ -n "$$unformatted" ]; then echo "gofmt: not formatted:"; echo "$$unformatted"; exit 1; fi
	$(STATICENV) nice $(GO) tool staticcheck ./...

vet: deps ## go vet, built as `make build` builds (CGO_ENABLED=0, -trimpath)
	$(STATICGO) vet ./...

fuzz: deps ## Fuzz the event decoder and the dead-letter envelope for FUZZTIME each (default 60s)
	$(GO) test -run='^$$' -fuzz='^FuzzDecode$$' -fuzztime=$(FUZZTIME) ./event
	$(GO) test -run='^$$' -fuzz='^FuzzEnvelopeRoundTrip$$' -fuzztime=$(FUZZTIME) ./deadletter

docs: ## Regenerate the README's generated tables (configuration, error codes)
	$(GO) run ./internal/readmegen -readme README.md

policy: deps ## The function role's RAM and trust policies for your deployment: ENIPOOL_DEPLOY_POOLS=<pools|*> ENIPOOL_DEPLOY_SCALING_GROUPS=<groups|*> make policy ACCOUNT=<id> (other ENIPOOL_DEPLOY_* as for deploy); writes dist/policy/
	$(GO) run ./deploy/cmd/policy -account "$(ACCOUNT)" -out dist/policy

policy-example: deps ## Render deploy/ram-policy.json and deploy/trust-policy.json, the example for the demo world
	$(GO) run ./deploy/cmd/policy -example

deploy: build ## Deploy with Serverless Devs (s deploy); needs `s config add` first
	npx --yes @serverless-devs/s deploy -y

remote-invoke: ## Invoke the deployed function: make remote-invoke EVENT=events/direct.json
	npx --yes @serverless-devs/s invoke -f $(EVENT)

clean: ## Remove build outputs
	rm -rf dist bench/out
