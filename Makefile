# hblock: `make run` starts redis-server with the module; `make test` runs every test.
# Both install what is missing first (redis-server, libclang-dev via apt-get when root).

PORT ?= 6379
CARGO ?= cargo
MODULE := target/release/libhblock.so
APT_PACKAGES := redis-server libclang-dev

.DEFAULT_GOAL := help
.PHONY: help deps build run test test-unit test-integration bench lint clean

help: ## Show this help
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-18s %s\n", $$1, $$2}'

deps: ## Install redis-server and libclang-dev if missing (apt-get, as root)
	@missing=""; \
	command -v redis-server >/dev/null 2>&1 || missing="$$missing redis-server"; \
	dpkg -s libclang-dev >/dev/null 2>&1 || ls /usr/lib/llvm-*/lib/libclang*.so* >/dev/null 2>&1 || missing="$$missing libclang-dev"; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "installing:$$missing"; \
	    DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	  else \
	    echo "missing:$$missing. Run: sudo apt-get update && sudo apt-get install -y $(APT_PACKAGES)"; exit 1; \
	  fi; \
	fi

build: deps ## Build target/release/libhblock.so
	$(CARGO) build --release

run: build ## Start redis-server on 127.0.0.1:$(PORT) with the module (foreground)
	redis-server redis.conf --port $(PORT)

test: build test-unit test-integration ## Install, build, run unit and integration tests

test-unit: ## Unit tests of the pure core (no server)
	$(CARGO) test --lib

test-integration: build ## Integration tests against real redis-server processes
	HBLOCK_MODULE=$(CURDIR)/$(MODULE) $(CARGO) test --test integration

bench: build ## Benchmarks against a local redis-server (QUICK=1 for a short run); results in target/bench/
	HBLOCK_MODULE=$(CURDIR)/$(MODULE) $(CARGO) bench --bench failover

lint: ## rustfmt and clippy
	$(CARGO) fmt --check
	$(CARGO) clippy --all-targets -- -D warnings

clean: ## Remove build output
	$(CARGO) clean
