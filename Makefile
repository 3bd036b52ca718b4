# make run   installs missing system packages, builds s2cr (release) and runs the main job: the
#            whole pipeline on the embedded offline demo, then the app on it (when a display is there)
# make test  installs missing system packages and runs the whole test suite
# make fuzz  fuzzes the parsers for a set time each (nightly toolchain; not part of CI)
# make deb   builds the Debian package (target/debian/s2cr_*.deb) of the release binary
# make deb-check  builds it, installs it into a throwaway Debian root (debootstrap), runs the demo,
#            the man page and a completion there, and removes it (root, network; not part of CI)

CARGO ?= cargo
TARGET_DIR := $(or $(CARGO_TARGET_DIR),target)
S2CR := $(TARGET_DIR)/release/s2cr
DEMO_DIR ?= s2cr-demo
# GDAL without its development package: the gdal crate's prebuilt bindings for the installed
# library's version, linked through a link in the build folder (nothing where libgdal-dev is
# installed: pkg-config is used then). Evaluated when a recipe runs, after the packages are in.
GDAL_ENV = gdal_env=$$(bash scripts/gdal-env.sh $(TARGET_DIR)/gdal-link) && eval "$$gdal_env" &&

.PHONY: deps test-deps build run test fuzz deb deb-check

deps:
	@bash scripts/install-deps.sh

test-deps:
	@bash scripts/install-deps.sh --test

build: deps
	@$(GDAL_ENV) echo "$(CARGO) build --release --bin s2cr" && $(CARGO) build --release --bin s2cr

# The main job: every stage on the embedded offline demo (real Sentinel-1/2 data of one
# SEN12MS-CR patch, with a simulated burn), resumed if $(DEMO_DIR) holds it already.
run: build
	$(S2CR) demo $(DEMO_DIR)

test: test-deps
	python3 scripts/module-graph.py --quiet
	python3 scripts/module-graph.py --files --quiet
	python3 scripts/check-links.py
	@$(GDAL_ENV) skips=$$(mktemp); status=0; \
	if command -v cargo-nextest >/dev/null 2>&1; then \
		S2CR_SKIP_LOG=$$skips $(CARGO) nextest run --no-fail-fast || status=$$?; \
	else \
		S2CR_SKIP_LOG=$$skips $(CARGO) test --no-fail-fast || status=$$?; \
	fi; \
	if [ -s $$skips ]; then echo "tests that skipped (a tool is missing; in CI, with CI=true, they fail instead):"; sort $$skips; fi; \
	rm -f $$skips; exit $$status
	@echo "the library without GDAL (s2cr-model-bench) still compiles:"
	$(CARGO) check --no-default-features --bin s2cr-model-bench

# Fuzzes the parsers (AOI, project.yaml, pipeline.yaml, STAC items, manifests, Sentinel-1 XML)
# for FUZZ_SECONDS each (default 600); needs a nightly toolchain. Not part of `make test`.
fuzz:
	@bash scripts/fuzz.sh

# The Debian package: man pages and completions generated from the command line's definition,
# then cargo-deb (installed from crates.io when missing).
deb: build
	$(S2CR) dist-assets --out $(TARGET_DIR)/release/dist
	@command -v cargo-deb >/dev/null 2>&1 || $(CARGO) install cargo-deb --locked
	$(CARGO) deb --no-build

deb-check: deb
	@bash scripts/deb-check.sh $(TARGET_DIR)/debian
