# The two commands of the README: `make dev` runs Gatehouse, `make test` runs
# every test. Both install what a fresh Debian machine lacks first.

CARGO ?= cargo

.PHONY: dev test setup services lint bench docs console

dev: setup docs console
	$(CARGO) run --bin gatehouse -- dev

test: setup services docs
	@scripts/console.sh --browser
	$(CARGO) test --workspace
	scripts/fuzz.sh 20

setup:
	@scripts/setup.sh

# The book, into target/book/, with the interactive API reference in
# target/book/api/ (the getting-started steps in it are run by
# tests/getting_started.rs, its links checked by tests/docs.rs).
docs:
	@scripts/book.sh

# The tenant console, into target/console/ (served at / by the control
# plane, which embeds it): Node.js and the npm packages when missing.
console:
	@scripts/console.sh

lint: setup
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
