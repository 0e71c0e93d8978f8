# Entry points for a newcomer: `make demo` and `make test`. Each one installs what it needs
# into this checkout first (scripts/bootstrap), so a fresh clone needs only Python 3.11.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
export ANSIBLE_COLLECTIONS_PATH := $(CURDIR)/.collections
export ANSIBLE_CONFIG := $(CURDIR)/ansible.cfg
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
export NO_PROXY := 127.0.0.1,localhost,::1
export no_proxy := 127.0.0.1,localhost,::1

.PHONY: bootstrap test-host-packages demo test test-unit test-integration lint bench changelog build clean

bootstrap:
	@scripts/bootstrap

demo: bootstrap
	@scripts/demo

test: bootstrap test-host-packages test-unit test-integration lint

# Debian packages for the Molecule scenarios that boot Linux test hosts; needs root when one is missing.
test-host-packages:
	@scripts/install-test-host-packages

test-unit: bootstrap
	$(PY) -m pytest -q tests/unit

test-integration: bootstrap
	$(PY) -m pytest -q tests/integration

lint: bootstrap
	@scripts/lint

bench: bootstrap
	@scripts/bench

# Record the fragments in changelogs/fragments under the version in galaxy.yml and write CHANGELOG.rst.
# Run it again after adding a fragment while that version is not yet published.
changelog: bootstrap
	$(VENV)/bin/antsibull-changelog release --update-existing --refresh-fragments --reload-plugins

# The collection tarball, homelab-edge-<version>.tar.gz in this directory, for Galaxy,
# `ansible-galaxy collection install` and execution-environment.yml.
build: bootstrap
	$(VENV)/bin/ansible-galaxy collection build --force

clean:
	rm -rf .run tests/output .ansible
