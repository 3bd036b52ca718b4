# make run   installs missing system packages, builds s2cr (release) and runs the main job
# make test  installs missing system packages and runs the whole test suite

CARGO ?= cargo
TARGET_DIR := $(or $(CARGO_TARGET_DIR),target)
S2CR := $(TARGET_DIR)/release/s2cr
DEMO_DIR ?= demo-project

.PHONY: deps build run test

deps:
	@bash scripts/install-deps.sh

build: deps
	$(CARGO) build --release

# The main job: a project for the example area (west of Kangaroo Island, burned in 2019-2020).
run: build
	@test -f $(DEMO_DIR)/project.yaml || $(S2CR) init $(DEMO_DIR) \
		--aoi confs/kangaroo-island-west.geojson --t0 2019-11-01/2019-12-15 --t1 2020-01-15/2020-02-28
	$(S2CR) info $(DEMO_DIR)

test: deps
	@if command -v cargo-nextest >/dev/null 2>&1; then \
		$(CARGO) nextest run --no-fail-fast; \
	else \
		$(CARGO) test --no-fail-fast; \
	fi
