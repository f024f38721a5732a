# endpoint-stage. Two commands on a fresh machine: `make run` and `make test`.
# Everything else they need (a repo-local Python venv with moto, cargo-lambda, zig, cfn-lint
# and SAM) is installed on first use by scripts/venv.sh.

CARGO ?= cargo
SHELL := /bin/bash

.PHONY: test test-long run run-regions watch lint routes fmt unit bench bench-reference bench-coldstart bench-load bench-abuse bench-signing sizes venv clean-venv deploy build-stack admin

## Every check and test (scripts/test.sh is their one list): formatting, lints, the import
## graph, the SAM template and routes, unit and property tests, the AWS adapters and CLIs against
## moto_server, the end-to-end suite over real HTTP against `cargo lambda watch`, authentik's
## generated client and the browser tests in Debian's Chromium. It installs what it needs and
## starts and stops the local stack itself.
test:
	scripts/test.sh

## The long suites (CI runs them too): property tests with 20,000 cases each, schema fuzzing of
## openapi.yaml (schemathesis) against the local stack, and the regions suite (tests/regions:
## two local regions, replay, failover, the negative control, signals across a primary move,
## ID tokens of both regions verified with one JWKS).
test-long:
	scripts/test.sh long

## The whole stack locally, with a demo key, connector, stage and enrollment token printed.
run:
	scripts/stack.sh run

## Two local regions on one machine (A us-east-1 on API_PORT 9000, B eu-west-1 on API_PORT_B
## 9001), each its own table in one emulator, replicated with REPLICATION_LAG_MS (default 1000)
## and last-writer-wins (docs/OPERATING.md, "Regions").
run-regions:
	scripts/regions.sh run

## `make run`, and a function is rebuilt and reloaded when its code changes (docs/DEVELOPING.md, "Watch mode").
watch:
	scripts/stack.sh watch

## Only the static checks of `make test` (its first steps).
lint:
	scripts/test.sh lint

## Rewrites the lists of routes generated from the route table (shared/src/edge/routes.rs):
## template.yaml's events and throttling budgets, the local router in Cargo.toml.
routes:
	ROUTES_WRITE=1 $(CARGO) test --locked -p endpoint-core --all-features --lib route_artefacts

fmt:
	$(CARGO) fmt --all

## Only the tests that need no emulator: every crate's unit tests, the core's rule, signing and
## property suites over the in-memory adapters, and the native messaging host.
unit:
	$(CARGO) test --workspace --lib --bins --locked
	$(CARGO) test --locked -p endpoint-core --features policy --test domain --test no_panic
	$(CARGO) test --locked -p endpoint-agent --test native_host

## Benchmarks of the core, medians per iteration (shared/benches; they go in docs/DEVELOPING.md, "Benchmarks").
bench:
	$(CARGO) bench -p endpoint-core --features policy --bench core --bench compliance --locked

## The release bootstraps for Lambda (arm64), and their sizes (docs/DEVELOPING.md, "Bootstrap sizes"). Each
## function is built on its own, as `sam build` does, so each links only its own features.
sizes: venv
	@for f in plans challenge response jwks agent web ssf deliver fallback; do \
	  PATH="$(CURDIR)/.venv/bin:$$PATH" CARGO_TARGET_DIR="$(CURDIR)/target/lambda-build" \
	    $(CARGO) lambda build --release --arm64 --bin "$$f" || exit 1; done
	@for f in plans challenge response jwks agent web ssf deliver fallback; do \
	  printf '%-10s %s bytes\n' "$$f" "$$(stat -c %s target/lambda-build/lambda/$$f/bootstrap)"; done

venv:
	scripts/venv.sh all

clean-venv:
	rm -rf .venv

## Response validation, ours vs the reference algorithm (PyJWT), same inputs and run.
bench-reference:
	bench/compare.sh

## Cold start and peak RSS of each release bootstrap, under a loopback Lambda Runtime API:
## init with a minimal Rust harness (coldstart-init), first response and RSS with bench/coldstart.py.
bench-coldstart:
	STACK_RELEASE=1 scripts/stack.sh test -- bash -c '$(CARGO) build -q --release -p endpoint-bench --bin coldstart-init && target/release/coldstart-init target/bench-build/release $${RUNS:-30} && .venv/bin/python bench/coldstart.py'

## A bounded load run through the local stack (release builds): p50/p99 per route, zero errors.
bench-load:
	STACK_RELEASE=1 scripts/stack.sh test -- .venv/bin/python bench/load.py

## What one client can make the stack spend (docs/PERFORMANCE.md, "Abuse"): (a) the CPU time of
## the costliest check-in an attacker can craft within the limits, against the typical 1.5 MiB
## one (release build, in process); (b) logins beside a device flooding check-ins at its limit
## and a receiver polling without acknowledging, p99 against the same logins alone; (c) the KMS
## signatures they cause, counted in moto. (b) and (c) through the local stack, release builds.
bench-abuse:
	$(CARGO) build -q --release --locked -p endpoint-bench --bin abuse-bench
	target/release/abuse-bench $${RUNS:-5}
	MOTO_COUNT_SIGNS=1 STACK_RELEASE=1 scripts/stack.sh test -- .venv/bin/python bench/abuse.py

## The two challenge signing modes in one run (docs/PERFORMANCE.md, "Challenge signing modes"):
## KMS calls per 1,000 challenges, counted in moto, and the executor GET's p50/p90/p99 of a KMS
## key and of a data key, interleaved, through the local stack in data-key mode (debug builds;
## STACK_RELEASE=1 for release builds). CHALLENGES per mode (default 1000).
bench-signing:
	CHALLENGE_SIGNING=data-key MOTO_COUNT_SIGNS=1 scripts/stack.sh test -- .venv/bin/python bench/signing.py

## The stack's Lambda bootstraps and the packaged template (sam build, rust-cargolambda: needs
## cargo-lambda and zig on the PATH, which the venv provides). About 15 minutes on 2 cores.
build-stack: venv
	PATH="$(CURDIR)/.venv/bin:$$PATH" SAM_CLI_TELEMETRY=0 .venv/bin/sam build

## Build, then deploy to the AWS account of the current credentials, asking for the parameters
## the first time (saved in samconfig.toml). See docs/OPERATING.md, "Deploying".
deploy: build-stack
	PATH="$(CURDIR)/.venv/bin:$$PATH" SAM_CLI_TELEMETRY=0 .venv/bin/sam deploy --guided

## The operator CLI as one release binary for this machine: target/release/endpoint-admin.
admin:
	$(CARGO) build --release --locked --bin endpoint-admin
	@echo "endpoint-admin: $(CURDIR)/target/release/endpoint-admin"
