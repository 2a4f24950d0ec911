# The two commands a newcomer needs: `make demo` and `make test`; `make unit` is the quick loop.
.PHONY: demo test unit setup services-up services-down bench
VENV := .venv
STAMP := $(VENV)/.installed

setup: $(STAMP)

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -e ".[worker,plot,dev]"
	touch $(STAMP)

services-up: setup
	scripts/services up

services-down:
	scripts/services down

# Lint, type-check and run every test against the real Kafka broker and Redis server, and
# the OpenTelemetry Collector (built from Go modules the first time, then cached).
test: services-up
	scripts/services up --otel
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy
	$(VENV)/bin/pytest -q -n 2 --dist loadgroup

# The quick loop: every test that needs no server (tests/unit and the doctests), on every core,
# property tests on a tenth of their examples and seed sweeps on their first seed
# (HYPOTHESIS_PROFILE=quick, tests/conftest.py). No lint, types or servers: `make test` runs all.
unit: setup
	HYPOTHESIS_PROFILE=quick $(VENV)/bin/pytest -q -n auto tests/unit rollguard localservers

demo: services-up
	$(VENV)/bin/rollguard demo
