# Two entry points: `make demo` and `make test`. Both build their own virtualenv first.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test venv unit integration faults bench lock clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(BIN)/churnwatch demo

# Debian packages the integration tests use for real: Prometheus (scraping, promtool), Chromium with
# its WebDriver for the inbox page, Alertmanager (amtool and the server: alert routing to a webhook,
# the compose file's healthchecks), wget (those healthchecks), and zsh and fish, which check and run
# the shell completion scripts (`churnwatch completion`).
DEBIAN_TEST_PACKAGES := prometheus chromium chromium-driver prometheus-alertmanager wget zsh fish

test: $(STAMP)
	scripts/ensure-debian-packages.sh $(DEBIAN_TEST_PACKAGES)
	$(BIN)/python -m pytest -q -p no:cacheprovider --durations=10 -n 2 --dist loadgroup

unit: $(STAMP)
	$(BIN)/python -m pytest -q tests/unit

integration: $(STAMP)
	scripts/ensure-debian-packages.sh $(DEBIAN_TEST_PACKAGES)
	$(BIN)/python -m pytest -q tests/integration

faults: $(STAMP)
	$(BIN)/python -m pytest -q tests/faults

bench: $(STAMP)
	$(BIN)/python bench/run_all.py

# deploy/requirements.lock: every package the image installs, pinned and hashed, resolved for the
# image's Python (3.11, Linux). Run after changing the dependencies in pyproject.toml (pins that still
# fit are kept; `make lock LOCK_FLAGS=--upgrade` moves every pin to the newest release allowed).
LOCK_FLAGS ?=
lock: $(STAMP)
	$(BIN)/pip install --quiet 'uv>=0.5'
	$(BIN)/uv pip compile --quiet pyproject.toml deploy/requirements.in --python-version 3.11 \
		--python-platform x86_64-manylinux_2_36 --generate-hashes \
		--custom-compile-command 'make lock' $(LOCK_FLAGS) -o deploy/requirements.lock

clean:
	rm -rf $(VENV) .demo build *.egg-info
