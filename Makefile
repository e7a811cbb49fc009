# Two commands for a newcomer on a fresh Debian/Ubuntu machine with Python 3.11:
#   make demo   the whole chain on the embedded default (synthetic line -> DDQA -> ...)
#   make test   the test suite
# Both create or refresh .venv first. GPU users: see README "GPU machines".

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
SUDO   := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
DEMO_DIR ?= demo_out

.PHONY: demo test lint format bench venv system-deps clean

venv: $(STAMP)

# torch==2.13.0 is pinned in pyproject.toml: pip takes the CPU build from local disk here,
# or a CUDA build of 2.13.0 already installed in .venv (see README).
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[all]'
	touch $(STAMP)

# Mosquitto (the MQTT broker the station tests and demo talk to), ffmpeg (test clips and
# stream stand-ins), openssl (certificates for the TLS tests) and chromium with its
# driver (the operator page's browser tests; Selenium drives the system's browser).
SYSTEM_TOOLS := mosquitto ffmpeg openssl chromium chromedriver
system-deps:
	@for tool in $(SYSTEM_TOOLS); do command -v $$tool >/dev/null 2>&1 || missing=1; done; \
	  [ -z "$$missing" ] || ( $(SUDO) apt-get update -qq && \
	    $(SUDO) apt-get install -y -qq mosquitto ffmpeg openssl chromium chromium-driver >/dev/null )

demo: $(STAMP)
	-@$(MAKE) --no-print-directory system-deps || echo "mosquitto not installed: the demo uses its embedded broker"
	$(BIN)/eiad demo --out $(DEMO_DIR)

test: $(STAMP) system-deps lint
	$(BIN)/python -m pytest -q

# ruff: the format and the rule set in pyproject.toml ([tool.ruff]); `make format` fixes both.
lint: $(STAMP)
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# Regenerates benchmarks/RESULTS.md, its JSON and plots on this machine: on the demo's
# trained artifact when `make demo` has made one, else on the edge tests' tiny graph.
BENCH_ARTIFACT ?= $(wildcard $(DEMO_DIR)/artifact/manifest.json)
bench: $(STAMP)
	-@$(MAKE) --no-print-directory system-deps
	$(BIN)/python -m benchmarks.regenerate $(if $(BENCH_ARTIFACT),--artifact $(DEMO_DIR)/artifact)

clean:
	rm -rf $(VENV) $(DEMO_DIR) .pytest_cache
