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

.PHONY: setup debs venv lint test demo sweep spm bench

setup: debs venv

debs:
	@scripts/install-debs $(DEBS)

venv: $(STAMP)

$(STAMP): requirements.txt requirements.lock
	@test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	@echo "Installing Python packages into $(VENV)"
	@$(VENV)/bin/pip install -q --disable-pip-version-check -r requirements.txt -c requirements.lock
	@rm -f $(VENV)/.installed-* && touch $@

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/salt-lint salt/ucarp/*.sls
	$(VENV)/bin/yamllint -s pillar.example FORMULA .yamllint
	shellcheck -s sh salt/ucarp/files/*
	shellcheck scripts/* .ci/run

test: lint
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(VENV)/bin/pytest $(PYTEST_ARGS)

demo: setup
	@PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(VENV)/bin/python demo/run.py

# Remove what a killed test session or demo left behind.
sweep: setup
	@PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(VENV)/bin/python -c 'import sys; sys.path.insert(0, "tests/sim"); from smartos_sim import bed; print("\n".join(bed.sweep()) or "nothing to sweep")'

# Benchmarks (as root): failover time, formula vs plain ucarp; reaction time;
# planned switchover gap vs unplanned failover gap.
# Results go to bench/results/ and are written up in bench/RESULTS.md.
bench: setup
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(VENV)/bin/python bench/failover.py --runs 10
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(VENV)/bin/python bench/reaction.py --runs 10
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(VENV)/bin/python bench/switchover.py --runs 10
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(VENV)/bin/python bench/scale.py

# Build the SPM package into build/ (spm local install build/ucarp-*.spm).
spm: setup
	@SPM=$(CURDIR)/$(VENV)/bin/spm scripts/build-spm build
