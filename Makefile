# The two commands a newcomer needs: `make demo` and `make test`.
.PHONY: demo test setup services-up services-down bench
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
	$(VENV)/bin/pytest -q

demo: services-up
	$(VENV)/bin/rollguard demo
