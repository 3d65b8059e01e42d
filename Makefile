# Two commands for a newcomer on a fresh Debian machine (as root):
#   make demo   builds a simulated two-hypervisor cluster and shows a failover
#   make test   lint and the whole test suite
# Both set themselves up first (Debian packages, .venv); safe to run twice.

SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
STAMP := $(VENV)/.installed-$(shell cat requirements.txt requirements.lock | cksum | cut -d' ' -f1)
DEBS := ucarp iproute2 nftables util-linux procps iputils-ping netcat-openbsd python3 python3-venv shellcheck
PYTEST_ARGS ?=
# The other Salt versions the tests run on (requirements/salt<major>.txt,
# each in .venvs/salt<major>); the main one is .venv's (requirements.txt).
MATRIX := 3006 3007
MATRIX_VENVS := $(foreach v,$(MATRIX),.venvs/salt$(v)/.installed)

.PHONY: setup debs venv matrix-venvs lint test demo sweep spm wheel bench soak

setup: debs venv

debs:
	@scripts/install-debs $(DEBS)

venv: $(STAMP)

$(STAMP): requirements.txt requirements.lock
	@test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	@echo "Installing Python packages into $(VENV)"
	@$(VENV)/bin/pip install -q --disable-pip-version-check -r requirements.txt -c requirements.lock
	@rm -f $(VENV)/.installed-* && touch $@

matrix-venvs: $(MATRIX_VENVS)

.venvs/salt%/.installed: requirements/salt%.txt requirements/salt%.lock
	@test -x .venvs/salt$*/bin/python || $(PYTHON) -m venv .venvs/salt$*
	@echo "Installing Salt $* and the test tools into .venvs/salt$*"
	@.venvs/salt$*/bin/pip install -q --disable-pip-version-check -r requirements/salt$*.txt -c requirements/salt$*.lock
	@touch $@

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/salt-lint salt/ucarp/*.sls
	$(VENV)/bin/yamllint -s pillar.example FORMULA .yamllint
	shellcheck -s sh salt/ucarp/files/*
	shellcheck scripts/* .ci/run tests/sim/bin/zlogin

# The whole suite on the main Salt, then the matrix tests on each other
# version; the last lines say how each version went.
test: lint matrix-venvs
	scripts/test-matrix $(PYTEST_ARGS)

demo: setup
	@PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(VENV)/bin/python demo/run.py

# Remove what a killed test session or demo left behind.
sweep: setup
	@PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(VENV)/bin/python -c 'import sys; sys.path.insert(0, "tests/sim"); from smartos_sim import bed; print("\n".join(bed.sweep()) or "nothing to sweep")'

# Benchmarks (as root): failover time, formula vs plain ucarp; reaction time;
# planned switchover gap vs unplanned failover gap; the gap of each planned
# maintenance (stop, reboot, disable, sick, hypervisor reboot, rollout).
# Results go to bench/results/ and are written up in bench/RESULTS.md.
bench: setup
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(VENV)/bin/python bench/failover.py --runs 10
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(VENV)/bin/python bench/reaction.py --runs 10
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(VENV)/bin/python bench/switchover.py --runs 10
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(VENV)/bin/python bench/maintenance.py --runs 10
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(VENV)/bin/python bench/scale.py
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(VENV)/bin/python bench/pillar_cache.py
	$(VENV)/bin/pip install -q --disable-pip-version-check -r requirements/bench.txt
	$(VENV)/bin/python bench/plot_scale.py

# 100 failovers in a row, every transition accounted for (about 25 minutes; not in bench).
soak: setup
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(VENV)/bin/python bench/soak.py --failovers 100

# Build the SPM package into build/ (spm local install build/ucarp-*.spm).
spm: setup
	@SPM=$(CURDIR)/$(VENV)/bin/spm scripts/build-spm build

# Build the wheel into dist/ (pip install dist/ucarp_formula-*.whl: the
# formula as a Salt extension).
wheel: setup
	@rm -f dist/ucarp_formula-*.whl
	@$(VENV)/bin/pip wheel -q --disable-pip-version-check --no-deps -w dist .
	@ls dist/ucarp_formula-*.whl
