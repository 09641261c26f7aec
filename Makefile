# Confab: the front door. CI runs `make test` (through .ci/run).
#
#   make cluster-up       start a local cluster (3 routers) under .cluster/
#   make cluster-status   show it;  make cluster-down  stop it
#   make test             format check, crate layers and import circles,
#                         clippy -D warnings, every test
#   make build            release build of every binary
#   make bench            benchmarks against a local release cluster

SHELL := /bin/bash
# One target directory outside the clone, so a fresh clone on a machine that
# built before recompiles only our own crates (RocksDB alone is 12 minutes).
export CARGO_TARGET_DIR ?= $(HOME)/.cache/confab/target
PROFILE ?= release
CARGO ?= cargo

.PHONY: deps build test lint fmt unit bench chaos cluster-up cluster-down cluster-status cluster-add-router clean-cluster

# System prerequisites a fresh machine lacks: libclang for RocksDB's bindgen.
# (protoc is vendored by the proto crate.)
deps:
	@scripts/ensure-deps.sh

build: deps
	$(CARGO) build --release --workspace --bins

lint: deps
	$(CARGO) fmt --all -- --check
	scripts/check-structure.py
	$(CARGO) clippy --workspace --all-targets -- -D warnings

fmt:
	$(CARGO) fmt --all

# End-to-end tests start the other services' binaries from the same target
# directory: build every binary first (same profile, so no extra compile).
unit: deps
	$(CARGO) build --workspace --bins
	$(CARGO) test --workspace

test: lint unit

bench: deps
	scripts/bench.sh
	scripts/bench-elastic.sh

# The long chaos run: 4 release routers behind fault-injecting proxies, a
# seeded schedule of faults, replica moves, a node added and one drained
# and removed (CONFAB_CHAOS_SECS, default 300 s), then a linearizability
# check. CONFAB_CHAOS_SEED=N replays a printed seed.
chaos: deps
	$(CARGO) build --release --workspace --bins
	$(CARGO_TARGET_DIR)/release/confab-chaos

cluster-up: deps
	PROFILE=$(PROFILE) scripts/cluster-up.sh

cluster-down:
	scripts/cluster-down.sh

cluster-status:
	PROFILE=$(PROFILE) scripts/cluster-status.sh

cluster-add-router: deps
	PROFILE=$(PROFILE) scripts/cluster-add-router.sh

clean-cluster: cluster-down
	rm -rf .cluster
