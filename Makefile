# tern: the two commands a newcomer needs on a fresh Debian 12 machine.
#   make run    install what is missing, build ternd and ternctl only, run ternd on its embedded
#               default config
#   make test   install what is missing, build, run every test suite (fuzz smoke, ASan, ctest)
#   make check  the inner loop: build, then the unit tests and config checks (no sanitizer tree,
#               integration, browser or fuzzing); a few minutes after the first build
#   make lint   clang-format, clang-tidy and cppcheck (CI runs it after make test)
#   make bench  ternd against coturn and a bare UDP forwarder, side by side (docs/performance.md)
# Variables: BUILD (build dir), WERROR=ON (CI), FUZZ_SECONDS (per fuzz target in make test),
#            FUZZ_TIME (per target in make fuzz).

BUILD        ?= build
FUZZ_BUILD   ?= build-fuzz
ASAN_BUILD   ?= build-asan
BUILD_DEB    ?= build-deb
FUZZ_TIME    ?= 600
WERROR       ?= OFF
FUZZ_SECONDS ?= 15
JOBS         ?= $(shell nproc)
SUDO         := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

# Build and run-time packages; test-only ones next (coturn's clients, strace, clang for fuzzing,
# Chromium and Firefox ESR with NSS tools and nftables for the browser end-to-end tests; nginx,
# haproxy and curl for the shared-port tests: a website behind ternd's TLS port and a PROXY v2
# sender in front of it. Debian 12's nginx package already has http_ssl and realip, nginx-light
# only adds the echo module. The tests run their own instances on free ports, never the system's).
BUILD_DEPS := cmake ninja-build g++ pkg-config libboost-dev libssl-dev libsodium-dev \
              libyaml-cpp-dev libspdlog-dev libfmt-dev libsystemd-dev libhiredis-dev \
              clang libbpf-dev bpftool
TEST_DEPS  := libgtest-dev libgmock-dev coturn strace openssl clang libclang-rt-14-dev \
              chromium firefox-esr libnss3-tools nftables iproute2 libbenchmark-dev \
              python3 util-linux nginx haproxy curl redis-server ethtool
# make lint: formatting, clang-tidy (with run-clang-tidy) and cppcheck; the tests' headers too,
# since clang-tidy compiles what it checks.
LINT_DEPS  := clang-format clang-tidy cppcheck libgtest-dev libgmock-dev libbenchmark-dev
# make bench: Google Benchmark, coturn to compare with, taskset (util-linux) to pin, python3,
# liburing for the forwarder's io_uring loop candidate (bench/run.py --loops), nginx and curl for
# a website behind the shared TLS port, haproxy as the splicing TCP proxy it is compared with,
# redis-server for the fleet store's cases (fleet on against off).
BENCH_DEPS := libbenchmark-dev coturn python3 util-linux openssl liburing-dev nginx curl haproxy \
              redis-server
# make test-package: a Debian root to install into (debootstrap), lintian, systemd-analyze and
# man (its man page check), systemd-nspawn to boot the root (dbus: nspawn's scope on a systemd
# host), coturn's clients to relay through the installed ternd, openssl and ss (iproute2) for
# the checks; dpkg-dev and file are what CPack's dpkg-shlibdeps step needs (make deb).
PACKAGE_DEPS := debootstrap lintian systemd man-db systemd-container dbus coturn openssl \
                iproute2 dpkg-dev file util-linux

.PHONY: all build run check test unit-and-integration fuzz-smoke fuzz sanitize lint deps test-deps \
        e2e-deps deploy-deps clean format bench bench-quick bench-micro bench-smoke \
        deb test-package

all: build

deps:
	@$(call install_missing,$(BUILD_DEPS))

test-deps:
	@$(call install_missing,$(BUILD_DEPS) $(TEST_DEPS))
	@$(MAKE) --no-print-directory e2e-deps
	@$(MAKE) --no-print-directory deploy-deps

# The browser tests' npm packages, exactly as locked (playwright-core drives Debian's Chromium,
# puppeteer-core Debian's Firefox ESR over WebDriver BiDi; neither downloads a browser).
e2e-deps:
	@command -v npm >/dev/null || { $(call install_missing,npm); }
	@[ -d tests/e2e/node_modules/playwright-core ] && [ -d tests/e2e/node_modules/puppeteer-core ] || \
	  (cd tests/e2e && npm ci --no-audit --no-fund)

# The Kubernetes manifest check's npm packages (tests/deploy/: kubernetes-models' API schemas,
# TypeScript for unknown fields, yaml), exactly as locked; the check itself runs offline.
deploy-deps:
	@command -v npm >/dev/null || { $(call install_missing,npm); }
	@[ -d tests/deploy/node_modules/kubernetes-models ] && [ -d tests/deploy/node_modules/typescript ] && \
	  [ -d tests/deploy/node_modules/yaml ] || (cd tests/deploy && npm ci --no-audit --no-fund)

# Installs only the packages dpkg does not already report as installed.
define install_missing
	missing=""; for p in $(1); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $$missing; \
	fi
endef

# Tests and benchmarks on: a tree that `make run` configured without them gets them back here.
build: deps
	cmake -S . -B $(BUILD) -G Ninja -DTERN_WERROR=$(WERROR) -DTERN_BUILD_TESTS=ON \
	  -DTERN_BUILD_BENCH=ON >/dev/null
	cmake --build $(BUILD) -j $(JOBS)

# Only what it runs, and ternctl for the README's next step (minting a credential): a fresh tree
# is configured without tests or benchmarks, so GoogleTest is not needed either; an existing tree
# keeps its settings.
run: deps
	@[ -f $(BUILD)/build.ninja ] || cmake -S . -B $(BUILD) -G Ninja -DTERN_WERROR=$(WERROR) \
	  -DTERN_BUILD_TESTS=OFF -DTERN_BUILD_BENCH=OFF
	cmake --build $(BUILD) -j $(JOBS) --target ternd ternctl
	$(BUILD)/server/ternd

# The unit test binaries, ternd and ternctl (the config checks run them), nothing else; the
# tests labelled `check` in tests/CMakeLists.txt.
CHECK_TARGETS := unit_protocol unit_edge unit_auth unit_allocation unit_config unit_server unit_ctl \
                 ternd ternctl
check:
	@$(call install_missing,$(BUILD_DEPS) libgtest-dev libgmock-dev)
	cmake -S . -B $(BUILD) -G Ninja -DTERN_WERROR=$(WERROR) -DTERN_BUILD_TESTS=ON >/dev/null
	cmake --build $(BUILD) -j $(JOBS) --target $(CHECK_TARGETS)
	cd $(BUILD) && ctest -L check -j $(JOBS) --output-on-failure

# The fuzz smoke run and the sanitizer tree go first so ctest's own summary of the main suite
# closes the output. Static analysis is `make lint` (about 8 minutes, most of it clang-tidy), which
# .ci/run calls after this, so `make test` stays near 23 minutes on a 2-core machine.
test: test-deps
	$(MAKE) --no-print-directory fuzz-smoke
	$(MAKE) --no-print-directory sanitize
	$(MAKE) --no-print-directory unit-and-integration

# Unit and integration tests again, built with ASan + UBSan (ternd included); any report fails.
# The browser test runs once, in the main tree.
sanitize:
	cmake -S . -B $(ASAN_BUILD) -G Ninja -DTERN_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug \
	  -DTERN_WERROR=$(WERROR) -DTERN_E2E=OFF
	cmake --build $(ASAN_BUILD) -j $(JOBS)
	cd $(ASAN_BUILD) && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
	  UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 ctest --output-on-failure -j 2

# Static analysis: every tracked C++ file formatted as .clang-format says, then the product
# sources (not tests, fuzzers or benchmarks) through clang-tidy with the checks in .clang-tidy
# and cppcheck; any finding fails. Silence a false positive in place (NOLINT(check) or
# cppcheck-suppress) with a comment saying why.
LINT_DIRS := protocol edge auth allocation config metrics server ctl
lint:
	@$(call install_missing,$(LINT_DEPS))
	$(MAKE) --no-print-directory build
	@clang-format --dry-run --Werror $$(git ls-files '*.cpp' '*.hpp') || \
	  { echo "clang-format: run make format"; exit 1; }
	@echo "clang-format: clean"
	run-clang-tidy -p $(BUILD) -quiet -j $(JOBS) \
	  '$(CURDIR)/($(subst $(eval) ,|,$(LINT_DIRS)))/' >$(BUILD)/clang-tidy.log 2>&1 || \
	  { grep -E 'warning:|error:' $(BUILD)/clang-tidy.log | sort -u; echo "clang-tidy failed"; exit 1; }
	@echo "clang-tidy: clean ($$(grep -c '^clang-tidy' $(BUILD)/clang-tidy.log) files)"
	cppcheck --enable=warning,performance,portability --std=c++20 --inline-suppr --quiet \
	  --error-exitcode=1 $(addprefix -I,$(wildcard $(addsuffix /include,$(LINT_DIRS)) server/*/include)) \
	  $(wildcard $(addsuffix /src,$(LINT_DIRS)) server/*/src) server/main/ternd.cpp ctl/ternctl.cpp
	@echo "cppcheck: clean"

unit-and-integration: build
	@echo "browsers for the e2e tests: $$(chromium --version 2>/dev/null | grep -v 'unexpected operator'); $$(firefox-esr --version 2>/dev/null)"
	cd $(BUILD) && ctest --output-on-failure -j 2
	$(MAKE) --no-print-directory bench-smoke

# A few seconds of ternbench against ternd: the generator and the runner still work. Not a
# measurement; `make bench` is.
bench-smoke: build
	python3 bench/run.py --build $(BUILD) --smoke

# ternd, Debian's coturn 4.6.1, coturn 4.17 (with and without its fast path) and the bare
# forwarder, each pinned to CPU 0 with ternbench on CPU 1, over interleaved rounds; prints one
# table of medians and ratios (<= 15 min, then the capacity report of the kernel fast path, 3-6 min; bench-quick <= 3 min). coturn 4.17 is built from source
# for the comparison only: COTURN_SRC=<coturn source tree or git mirror> builds it once into
# $(BUILD)/coturn-4.17 (bench/build-coturn.sh); without it those columns stay empty.
bench:
	@$(call install_missing,$(BENCH_DEPS))
	$(MAKE) --no-print-directory build
	@if [ -n "$(COTURN_SRC)" ] && [ ! -x $(BUILD)/coturn-4.17/bin/turnserver ]; then \
	  bench/build-coturn.sh "$(COTURN_SRC)" $(BUILD)/coturn-4.17; fi
	python3 bench/run.py --build $(BUILD) $(BENCH_ARGS)

bench-quick:
	$(MAKE) --no-print-directory bench BENCH_ARGS=--quick

# Google Benchmark micro-benchmarks of the parser, integrity, relay path and look-ups.
bench-micro:
	@$(call install_missing,$(BENCH_DEPS))
	$(MAKE) --no-print-directory build
	$(BUILD)/bench/micro/tern_microbench $(MICRO_ARGS)

fuzz-smoke:
	CXX=clang++ cmake -S . -B $(FUZZ_BUILD) -G Ninja -DTERN_BUILD_FUZZERS=ON \
	  -DCMAKE_BUILD_TYPE=RelWithDebInfo -DTERN_WERROR=$(WERROR) -DTERN_FUZZ_SECONDS=$(FUZZ_SECONDS)
	cmake --build $(FUZZ_BUILD) -j $(JOBS)
	cd $(FUZZ_BUILD) && ctest --output-on-failure

# Every fuzz target for FUZZ_TIME seconds each (default 600), one after another, starting from
# the committed corpora; new inputs stay in $(FUZZ_BUILD)/fuzz/corpus-<target>.
fuzz:
	$(MAKE) --no-print-directory fuzz-smoke FUZZ_SECONDS=1
	for t in $$(ls fuzz/*.cpp | xargs -n1 basename | sed 's/\.cpp$$//'); do \
	  fuzz/run-fuzzer.sh $(FUZZ_BUILD)/fuzz/$$t fuzz/corpus/$$t $(FUZZ_BUILD)/fuzz/corpus-$$t \
	    $(FUZZ_TIME) || exit 1; \
	done

# The Debian package, $(BUILD_DEB)/tern_<version>_<arch>.deb (build-deb/tern_0.1.0_amd64.deb),
# from a Release tree of its own built with dpkg-buildflags' hardening flags and packed by
# CPack (packaging/CMakeLists.txt). -g and -O2 are left out: the binaries are stripped, and
# Release's -O3 is what the benchmarks measure.
deb: deps
	@$(call install_missing,dpkg-dev file)
	export DEB_BUILD_MAINT_OPTIONS=hardening=+all DEB_CXXFLAGS_MAINT_STRIP="-g -O2"; \
	cmake -S . -B $(BUILD_DEB) -G Ninja -DCMAKE_BUILD_TYPE=Release -DTERN_BUILD_TESTS=OFF \
	  -DTERN_BUILD_BENCH=OFF -DTERN_WERROR=$(WERROR) \
	  -DCMAKE_CXX_FLAGS="$$(dpkg-buildflags --get CPPFLAGS) $$(dpkg-buildflags --get CXXFLAGS)" \
	  -DCMAKE_EXE_LINKER_FLAGS="$$(dpkg-buildflags --get LDFLAGS)"
	cmake --build $(BUILD_DEB) -j $(JOBS)
	cd $(BUILD_DEB) && cpack -G DEB
	@echo "package: $(BUILD_DEB)/tern_$$(sed -n 's/^CMAKE_PROJECT_VERSION:STATIC=//p' \
	  $(BUILD_DEB)/CMakeCache.txt)_$$(dpkg --print-architecture).deb"

# Lints the package, installs it into a fresh debootstrap root and checks it there: files,
# user, conffile, systemd-analyze verify, relaying with the unit's own command lines, a broken
# config, the certbot hook with a reload, the root booted with systemd-nspawn so systemd runs
# the unit, an upgrade and a purge (tests/package/test-package.sh; about 3 minutes).
test-package:
	@$(call install_missing,$(PACKAGE_DEPS))
	$(MAKE) --no-print-directory deb
	tests/package/test-package.sh $(BUILD_DEB)

format:
	clang-format -i $$(git ls-files '*.cpp' '*.hpp')

# Every tree a make target creates.
clean:
	rm -rf $(BUILD) $(FUZZ_BUILD) $(ASAN_BUILD) $(BUILD_DEB)
