# sovdeploy: `make up` sets everything up and deploys the sandbox; `make test` is what CI runs.
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
BIN := $(CURDIR)/$(VENV)/bin
export PATH := $(BIN):$(PATH)
export CONTAINERS_CONF ?= $(CURDIR)/.config/containers/containers.conf
INVENTORY ?= inventories/sandbox
# netavark (podman's network stack) runs iptables but does not depend on it.
APT_PACKAGES := podman runc debootstrap netavark aardvark-dns iptables qemu-system-x86 qemu-utils openssh-client python3-venv git docker-registry dpkg-dev graphviz libseccomp-dev
APT_CACHE := /var/cache/sovdeploy/apt

.PHONY: help deps venv mirror image up down test lint docs unit terraform-test molecule molecule-long integration conformance conformance-ci bench bench-up bench-mirror clean

help:
	@echo "make up    install what is needed, build the mirror and the sandbox image, run sovdeploy up on $(INVENTORY)"
	@echo "make mirror  build what the inventory needs from pinned source (sovdeploy mirror build)"
	@echo "make test  everything CI runs: lint, unit, terraform tests, molecule, sandbox integration"
	@echo "make down  destroy the sandbox hosts"
	@echo "make conformance  every [Conformance] test of the release against the sandbox's cluster (hours; after make up)"
	@echo "make conformance-ci  the conformance subset CI runs, against the sandbox's cluster (after make up)"
	@echo "make docs  build the documentation site into .cache/site"
	@echo "make bench time sovdeploy validate (10, 100, 1000 hosts) and the ledger (append, verify, proofs)"
	@echo "make bench-up  re-deploy the sandbox: cold up per phase, second up, bare apt-get install"

# System packages, only when something is missing. OpenTofu and the providers are built
# from pinned source by `make mirror`; only Go itself must be on the machine.
deps:
	@missing=""; for p in $(APT_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'install ok installed' || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi
	@command -v go >/dev/null || { echo "go (>= 1.21) is not on PATH: install Go from your mirror; it fetches the pinned toolchain (GOTOOLCHAIN) through the Go source" >&2; exit 1; }
	@mkdir -p $(APT_CACHE)

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Python >= 3.11 is needed"'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

venv: $(VENV)/.installed

# OpenTofu and the OpenStack provider, built reproducibly from pinned Go modules into the
# inventory's mirror tree (cached: a second run builds nothing); `tofu` is linked into
# the venv for lint and the module tests.
mirror: deps venv
	$(BIN)/sovdeploy mirror build -i $(INVENTORY)
	ln -sf "$$($(BIN)/sovdeploy mirror path tofu -i $(INVENTORY))" $(BIN)/tofu

image: deps venv
	$(BIN)/sovdeploy sandbox image -i $(INVENTORY)

up: mirror image
	$(BIN)/sovdeploy up -i $(INVENTORY)
	$(BIN)/sovdeploy status -i $(INVENTORY)

down: venv
	$(BIN)/sovdeploy down -i $(INVENTORY) --yes

lint: venv mirror
	ruff check sovdeploy tests roles molecule plugins
	ruff format --check sovdeploy tests roles molecule plugins
	mypy sovdeploy
	yamllint -s .
	ansible-lint --profile production
	TF_CLI_CONFIG_FILE=/dev/null tofu fmt -check -recursive terraform

# The documentation site (MkDocs), into .cache/site; a warning (a broken link, a page left
# out of the navigation) fails the build.
docs: venv
	mkdocs build --strict

unit: venv
	pytest -q tests/unit

terraform-test: venv mirror
	pytest -q tests/integration/test_terraform.py

# Each scenario's hosts keep their own apt cache (see .config/molecule/config.yml).
# Role scenarios run one after another (they share the instance name). The long ones
# stand up MariaDB, HAProxy, Keystone and more before their own role (3 to 17 minutes
# each on 2 cores): `make test` covers those roles through molecule/aio, the whole
# site on two hosts, whose verify also checks Keystone's key files and the dashboard
# through HAProxy; `make molecule-long` runs their own scenarios. So do mariadb,
# memcached, ovn and ceph (3 to 5 minutes each), which every service and the server
# that aio's verify boots depend on, to keep `make test` within CI's time. So does the
# kubernetes role's default scenario (files and manifests for GPU and SR-IOV workers,
# without the bootstrap; about 3 minutes): `make test` runs its `cluster` scenario, the
# whole cluster from the deployer's mirror service (about 10 minutes), below.
MOLECULE_LONG = keystone horizon placement glance cinder neutron nova tenancy mariadb memcached ovn ceph kubernetes
MOLECULE_ALL = $(patsubst roles/%/molecule/default/molecule.yml,%,$(wildcard roles/*/molecule/default/molecule.yml))
MOLECULE_ROLES = $(filter-out $(MOLECULE_LONG),$(MOLECULE_ALL))
define molecule_roles
	@set -e; for role in $(1); do \
		mkdir -p $(APT_CACHE)/molecule-default/partial $(APT_CACHE)/molecule-kubernetes-cp1/partial $(APT_CACHE)/molecule-kubernetes-cp2/partial; \
		echo "== molecule: $$role"; start=$$SECONDS; (cd roles/$$role && molecule test); \
		echo "== molecule: $$role took $$((SECONDS - start))s"; done
endef

molecule: image
	$(call molecule_roles,$(MOLECULE_ROLES))
	@mkdir -p $(foreach h,cp1 cp2 cp3 w1,$(APT_CACHE)/molecule-kubernetes-$(h)/partial)
	@echo "== molecule: kubernetes/cluster"; start=$$SECONDS; (cd roles/kubernetes && molecule test -s cluster); \
		echo "== molecule: kubernetes/cluster took $$((SECONDS - start))s"
	mkdir -p $(APT_CACHE)/molecule-aio-ctl/partial $(APT_CACHE)/molecule-aio-cmp/partial
	@echo "== molecule: aio"; start=$$SECONDS; molecule test -s aio; \
		echo "== molecule: aio took $$((SECONDS - start))s"

molecule-long: image
	$(call molecule_roles,$(MOLECULE_LONG))

integration: image
	pytest -q tests/integration/test_sandbox.py

# The cluster `make up` deployed: every [Conformance] test, the cncf/k8s-conformance bundle
# into the state dir (docs/concepts.md); or the subset CI runs.
conformance: venv
	$(BIN)/sovdeploy verify kubernetes -i $(INVENTORY)

conformance-ci: venv
	$(BIN)/sovdeploy verify kubernetes --subset ci --parallel 2 -i $(INVENTORY)

test: mirror image lint docs
	pytest tests
	$(MAKE) molecule

# Cold and warm `mirror build` of everything (Kubernetes included), and a kubelet rebuild.
bench-mirror: venv
	$(BIN)/python tests/benchmarks/bench_mirror.py $(INVENTORY)

bench: venv
	$(BIN)/python tests/benchmarks/bench_validate.py
	$(BIN)/python tests/benchmarks/bench_ledger.py

# Destroys and re-deploys the sandbox: cold up per phase, second up, bare apt-get.
bench-up: image
	$(BIN)/python tests/benchmarks/bench_up.py $(INVENTORY)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
