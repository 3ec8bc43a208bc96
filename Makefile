# The two commands of the README: `make dev` runs Gatehouse, `make test` runs
# every test. Both install what a fresh Debian machine lacks first.

CARGO ?= cargo

.PHONY: dev test setup services lint bench

dev: setup
	$(CARGO) run --bin gatehouse -- dev

test: setup services
	$(CARGO) test --workspace
	scripts/fuzz.sh 20

setup:
	@scripts/setup.sh

services:
	@scripts/test-services.sh

lint: setup
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
