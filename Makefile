# Quick start: `make run` (install, build, run on the embedded default config) and
# `make test` (install, build, run every test, then again under ASan+UBSan).
BUILD ?= build
ASAN_BUILD ?= build-asan
JOBS ?= $(shell nproc)

.PHONY: all build deps test-deps run test test-fast test-asan test-docker fuzz bench bench-agent clean

all: build

build:
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
	@cmake --build $(BUILD) -j $(JOBS)

deps:
	@scripts/install-deps.sh

test-deps:
	@scripts/install-deps.sh --test

run: deps build
	./$(BUILD)/flamegate

test: test-deps
	@$(MAKE) --no-print-directory test-fast
	@$(MAKE) --no-print-directory test-asan
	@$(MAKE) --no-print-directory test-docker

# The Dockerfile's steps in debootstrap chroots (needs root; caches the base root under
# /var/cache/flamegate-debootstrap). install-deps --test installs debootstrap.
test-docker:
	@if command -v debootstrap >/dev/null; then docker/check; \
	 else echo "test-docker: debootstrap missing (scripts/install-deps.sh --test)" >&2; exit 1; fi

test-fast: build
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS)

test-asan:
	@cmake -S . -B $(ASAN_BUILD) -DCMAKE_BUILD_TYPE=Debug -DFG_SANITIZE=ON >/dev/null
	@cmake --build $(ASAN_BUILD) -j $(JOBS)
	cd $(ASAN_BUILD) && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
	  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	  ctest --output-on-failure -j $(JOBS)

# libFuzzer targets (clang); e.g. make fuzz && build-fuzz/tests/fuzz_otlp_proto -max_total_time=60
fuzz: test-deps
	@CC=clang cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=Debug -DFG_FUZZ=ON >/dev/null
	@cmake --build build-fuzz -j $(JOBS)

# Benchmark (bench/README.md): RelWithDebInfo build, h2load load over HTTP/1.1, h2c and
# gRPC, one table on stdout. Not a test; a few minutes at most.
bench: test-deps
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
	@cmake --build $(BUILD) -j $(JOBS) --target bench_tools
	/usr/bin/python3 bench/bench.py --build $(BUILD)

# Agent overhead: plain vs flamegate agent vs gperftools, medians of 9 runs (agent/README.md)
bench-agent: build
	@scripts/install-deps.sh --bench
	/usr/bin/python3 bench/agent/run.py --build $(BUILD) --runs 9

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) build-fuzz
