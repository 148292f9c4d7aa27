# Concord: `make run` starts the tray app, `make test` runs every test. Both install what is
# missing first (system packages, npm packages, test servers) and only check when nothing is.

SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
CARGO ?= cargo
APP := target/debug/concord-app
CLI := target/debug/concord
export CONCORD_TEST_VENV := $(CURDIR)/.tools/venv

.PHONY: run test deps ui app lint fmt bench torture clean

## run: install what is missing, build, and start the tray app
run:
	@if [ -z "$${DISPLAY:-}" ] && [ -z "$${WAYLAND_DISPLAY:-}" ]; then \
	  scripts/deps.sh build; \
	  $(CARGO) build --quiet -p concord-cli; \
	  echo "No display: the tray app needs a desktop session; without one, run the scheduler with: $(CLI) daemon"; \
	  exit 0; \
	fi; \
	$(MAKE) --no-print-directory app; \
	exec $(APP)

## test: install what is missing (test servers, drivers too), then run every test
test: deps
	scripts/deps.sh test
	scripts/deps.sh venv
	scripts/deps.sh driver
	$(CARGO) fmt --all -- --check
	npm --prefix ui run --silent check
	npm --prefix ui run --silent format:check
	npm --prefix ui run --silent test
	$(CARGO) test
	$(MAKE) --no-print-directory app
	$(CARGO) test -p concord-e2e --no-run
	CONCORD_APP=$(CURDIR)/$(APP) tests/desktop-session.sh \
	  $(CARGO) test -p concord-e2e -- --test-threads=1

deps:
	scripts/deps.sh build
	scripts/deps.sh ui

## ui: the settings window, built into ui/dist (embedded into the app at compile time)
ui: deps
	npm --prefix ui run --silent build

## app: the desktop app and the `concord` command
app: ui
	$(CARGO) build -p concord-app -p concord-cli

## torture: the durable engine's kill -9 test, long: 3 seeds x 350 kills (TORTURE_SEED replays one)
torture:
	$(CARGO) run --release -q -p concord-durable --bin concord-durable-torture -- --kills 350 --seeds 3

## bench: every benchmark, side by side with its peers; figures go to BENCHMARKS.md by hand
bench: deps
	scripts/deps.sh bench
	scripts/deps.sh venv
	$(CARGO) bench -p concord-durable --bench engine
	$(CARGO) bench -p concord-core --bench feeds
	$(CARGO) bench -p concord-core --bench vdir_write
	$(CARGO) bench -p concord-e2e --bench sync

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	npm --prefix ui run --silent check

fmt:
	$(CARGO) fmt --all
	npm --prefix ui run --silent format

clean:
	$(CARGO) clean
	rm -rf ui/dist ui/node_modules .tools
