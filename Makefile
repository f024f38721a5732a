# endpoint-stage. Two commands on a fresh machine: `make run` and `make test`.
# Everything else they need (a repo-local Python venv with moto) is installed on first use.

CARGO ?= cargo
SHELL := /bin/bash

.PHONY: test run lint fmt unit bench venv clean-venv

## Every test: formatting, lints, unit and property tests, and the AWS adapter tests against
## moto_server (started and stopped by scripts/with-moto.sh).
test: lint
	scripts/with-moto.sh -- $(CARGO) test --workspace --all-features --locked

## cargo fmt --check and clippy with warnings as errors, on every target.
lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets --all-features --locked -- -D warnings

fmt:
	$(CARGO) fmt --all

## Only the tests that need no emulator.
unit:
	$(CARGO) test --workspace --locked

## Criterion benchmarks of the core (medians go in the README's performance table).
bench:
	$(CARGO) bench -p endpoint-core --bench core --locked

venv:
	scripts/venv.sh

clean-venv:
	rm -rf .venv
