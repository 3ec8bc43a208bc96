# The two commands of the README: `make dev` runs Gatehouse, `make test` runs
# every test. Both install what a fresh Debian machine lacks first.

CARGO ?= cargo

# mdBook builds the book in docs/; pinned, installed with cargo when missing.
MDBOOK_VERSION := 0.5.4

.PHONY: dev test setup services lint bench docs mdbook

dev: setup docs
	$(CARGO) run --bin gatehouse -- dev

test: setup services docs
	$(CARGO) test --workspace
	scripts/fuzz.sh 20

setup:
	@scripts/setup.sh

# The book, into target/book/, with the interactive API reference in
# target/book/api/ (the getting-started steps in it are run by
# tests/getting_started.rs, its links checked by tests/docs.rs).
# Touching book.toml makes the control plane embed the new book at its next
# build (control/build.rs watches docs/ while the book is missing).
docs: mdbook
	mdbook build docs
	scripts/api-reference.sh
	@touch docs/book.toml

mdbook:
	@mdbook --version 2>/dev/null | grep -qx 'mdbook v$(MDBOOK_VERSION)' || \
		$(CARGO) install mdbook --version $(MDBOOK_VERSION) --locked

services:
	@scripts/test-services.sh

lint: setup
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
