# Confab: the front door. CI runs `make test` (through .ci/run).
#
#   make cluster-up       start a local cluster (3 routers) under .cluster/
#   make cluster-status   show it;  make cluster-down  stop it
#   make cluster-up-hosts each process in its own network namespace, zones
#                         on virtual links (root); make cluster-down-hosts
#   make test             format check, crate layers and import circles,
#                         clippy -D warnings, deploy/ checks, web/dist
#                         up to date, every test (the browser one too)
#   make check-deploy     deploy/ offline: compose and Kubernetes manifests
#                         (schemas, flags and keys against the sources),
#                         Prometheus rules (promtool test rules), dashboards
#   make web-screenshots  the browser test, saving docs/screenshots/
#   make build            release build of every binary
#   make image            confab:latest with podman (Dockerfile; Debian bases
#                         made by debootstrap, no registry needed)
#   make image-check      that image as a router, persist and a gateway in a
#                         pod; a chat round trip from outside it
#   make stack-up         deploy/compose.yml here with podman (no Grafana,
#                         Loki, Alloy), a chat round trip from the host
#   make stack-down       remove all that stack-up made
#   make bench            benchmarks against a local release cluster
#   make bench-tls        the same plain and with TLS on, and the ratios
#   make bench-trace      chat plain and with traces (1 %) + JSON logs
#   make bench-compare BEFORE=DIR  chat: this build against an older one's binaries
#   make soak             half-maximum load for SOAK_SECS (1800): RSS, open
#                         files and p99 every 10 s must not grow; a plot
#   make fuzz             each fuzz target for FUZZ_SECS seconds (default
#                         600), one after the other; fails on a crash
#   make fuzz-seeds       regenerate the seed corpus under fuzz/corpus/

SHELL := /bin/bash
# One target directory outside the clone, so a fresh clone on a machine that
# built before recompiles only our own crates (RocksDB alone is 12 minutes).
export CARGO_TARGET_DIR ?= $(HOME)/.cache/confab/target
PROFILE ?= release
CARGO ?= cargo

.PHONY: deps web web-screenshots build image image-check stack-up stack-down test lint check-deploy fmt unit bench bench-tls bench-trace bench-compare chaos chaos-chat soak fuzz fuzz-seeds cluster-up cluster-down cluster-up-hosts cluster-down-hosts cluster-status cluster-add-router clean-cluster

# System prerequisites a fresh machine lacks: libclang for RocksDB's bindgen.
# (protoc is vendored by the proto crate.)
deps:
	@scripts/ensure-deps.sh

# The web client's toolchain: Node.js, Debian's chromium for the browser
# tests, web/node_modules (npm ci).
web:
	@scripts/ensure-web.sh

build: deps
	$(CARGO) build --release --workspace --bins

# The image (podman, configured by scripts/ensure-podman.sh): the build
# stage reuses this target directory and the host's toolchain.
image: deps
	scripts/image.sh

image-check: build
	scripts/image-check.sh

# The compose stack on this machine under podman (scripts/stack.sh).
stack-up: build
	scripts/stack.sh up

stack-down:
	scripts/stack.sh down

lint: deps web check-deploy
	$(CARGO) fmt --all -- --check
	cd web && npm run --silent check-dist
	scripts/check-structure.py
	$(CARGO) clippy --workspace --all-targets -- -D warnings

# What deploy/ holds, checked offline (installs promtool, a compose loader
# and the Kubernetes schemas where missing; starts nothing).
check-deploy:
	scripts/check-manifests.sh
	scripts/check-observability.sh

fmt:
	$(CARGO) fmt --all

# End-to-end tests start the other services' binaries from the same target
# directory: build every binary first (same profile, so no extra compile).
# Then the gateway's end-to-end suite again on PostgreSQL + RabbitMQ and on
# MariaDB (a fresh database per cluster); the tests that make their own
# backends (or network namespaces) ran once above.
IT_ONCE = --skip zones:: --skip persist_scale:: --skip amqp_pg:: --skip mariadb:: --skip chat_chaos::
unit: deps web
	$(CARGO) build --workspace --bins
	$(CARGO) test --workspace
	CONFAB_IT_BACKEND=pg-amqp $(CARGO) test -p confab-gateway --test it -- $(IT_ONCE)
	CONFAB_IT_BACKEND=mariadb $(CARGO) test -p confab-gateway --test it -- $(IT_ONCE)

test: lint unit

# The README's screenshots, taken by the browser test against a cluster of
# its own (gateway test it::web).
web-screenshots: deps web
	$(CARGO) build --workspace --bins
	CONFAB_SCREENSHOTS=$(CURDIR)/docs/screenshots $(CARGO) test -p confab-gateway --test it web:: -- --nocapture

bench: deps
	scripts/bench.sh
	scripts/bench-elastic.sh

# What TLS costs: the router, chat and idle-connection benchmarks plain,
# then with TLS everywhere, in one series; prints both columns and ratios.
bench-tls: deps
	scripts/bench-tls.sh

# What traces cost: the chat plain, then with every process exporting
# traces at 1 % sampling (to confab-bench otlp-sink) and logging JSON, in
# alternating rounds (closed loop; CHAT_SWEEP="FROM STEP TO" adds the
# latency-throughput sweep and judges by its knee); fails when the traced
# figure is under 95 % of plain.
bench-trace: deps
	scripts/bench-trace.sh

# This build's chat against an older build's release binaries (BEFORE=DIR),
# in alternating rounds; fails under MIN_RATIO (0.95) of the older figure.
bench-compare: deps
	scripts/bench-compare.sh

# Chat, group and presence load at about half the measured maximum for
# SOAK_SECS (default 1800) against a private release cluster, sampling every
# process's RSS and open files and the send p99 every 10 s; fails on growth
# (the rule: scripts/soak-report.py). Writes target-bench/soak/ (samples,
# verdict, soak.svg).
soak: deps
	scripts/soak.sh

# Whole-stack chaos (gateway test it::chat_chaos): a 1:1 and group chat
# load while a seeded schedule SIGKILLs and restarts, or SIGSTOPs and
# SIGCONTs, gateways, persist processes and routers, and cuts PostgreSQL
# and RabbitMQ off; then every acknowledged message must be stored once and
# received once by every device, in order. Both backends at once (embedded;
# PostgreSQL + RabbitMQ with two persist processes), CONFAB_CHAOS_SECS each
# (default 300); prints the seeds, CONFAB_CHAOS_SEED=N replays one.
chaos-chat: deps
	$(CARGO) build --workspace --bins
	CONFAB_CHAOS_SECS=$${CONFAB_CHAOS_SECS:-300} $(CARGO) test -p confab-gateway --test it chat_chaos::long -- --ignored --nocapture

# The long chaos run: 4 release routers behind fault-injecting proxies, a
# seeded schedule of faults, replica moves, a node added and one drained
# and removed (CONFAB_CHAOS_SECS, default 300 s), then a linearizability
# check; CONFAB_CHAOS_RUNS runs (default 3), each with the next seed.
# CONFAB_CHAOS_SEED=N replays a printed seed.
chaos: deps
	$(CARGO) build --release --workspace --bins
	CONFAB_CHAOS_RUNS=$${CONFAB_CHAOS_RUNS:-3} $(CARGO_TARGET_DIR)/release/confab-chaos

# Coverage-guided fuzzing (cargo-fuzz, libFuzzer), installed on first use.
# The machine has the stable toolchain only: RUSTC_BOOTSTRAP=1 lets it take
# the nightly flags cargo-fuzz passes. No sanitizer (the code forbids
# unsafe), debug assertions on (overflows fail). The seeds in fuzz/corpus/
# are only read; what the fuzzer finds goes under FUZZ_DIR, a crash input
# under FUZZ_DIR/artifacts/<target>/.
FUZZ_SECS ?= 600
FUZZ_DIR ?= $(CARGO_TARGET_DIR)/fuzz
FUZZ_TARGETS := client_frame queue_replay raft_decode conversation_id
FUZZ := RUSTC_BOOTSTRAP=1 $(CARGO) fuzz

fuzz: deps
	@command -v cargo-fuzz >/dev/null || $(CARGO) install --locked cargo-fuzz
	$(FUZZ) build -s none -a --target-dir $(FUZZ_DIR)
	@set -e; for t in $(FUZZ_TARGETS); do \
		mkdir -p $(FUZZ_DIR)/corpus/$$t $(FUZZ_DIR)/artifacts/$$t; \
		echo "== fuzz $$t for $(FUZZ_SECS) s"; \
		$(FUZZ) run -s none -a --target-dir $(FUZZ_DIR) $$t $(FUZZ_DIR)/corpus/$$t fuzz/corpus/$$t -- \
			-max_total_time=$(FUZZ_SECS) -artifact_prefix=$(FUZZ_DIR)/artifacts/$$t/ -print_final_stats=1; \
	done

# The seed corpus: small valid inputs written by ignored tests of the crates.
fuzz-seeds:
	CONFAB_FUZZ_SEEDS=$(CURDIR)/fuzz/corpus $(CARGO) test -p confab-gateway --lib write_fuzz_seeds -- --ignored
	CONFAB_FUZZ_SEEDS=$(CURDIR)/fuzz/corpus $(CARGO) test -p confab-queue --lib write_fuzz_seeds -- --ignored
	CONFAB_FUZZ_SEEDS=$(CURDIR)/fuzz/corpus $(CARGO) test -p confab-router-state --lib write_fuzz_seeds -- --ignored

cluster-up: deps
	PROFILE=$(PROFILE) scripts/cluster-up.sh

cluster-down:
	scripts/cluster-down.sh

# The cluster as on separate hosts: a network namespace per process, zones
# on virtual links (scripts/hosts-net.sh); needs root.
cluster-up-hosts: deps
	PROFILE=$(PROFILE) scripts/cluster-up-hosts.sh

cluster-down-hosts:
	scripts/cluster-up-hosts.sh down

cluster-status:
	PROFILE=$(PROFILE) scripts/cluster-status.sh

cluster-add-router: deps
	PROFILE=$(PROFILE) scripts/cluster-add-router.sh

clean-cluster: cluster-down
	rm -rf .cluster
