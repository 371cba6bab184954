# Two commands matter: `make demo` (run the platform) and `make test` (the whole suite).
PYTHON ?= $(shell command -v python3.12 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
# The installer; the same version the lock pins (Flower depends on it).
UV_VERSION := 0.12.24
PYTEST_ARGS ?=
TEST_MARKERS ?= not slow

.PHONY: demo demo-reset test bench lint lock stack stack-stop clean

$(VENV)/.installed: requirements.lock config/npm_bundle.py dashboards/plotly_bundle.py infra/axe_bundle.py
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 12) else "Flourish needs Python 3.12 or newer; found " + sys.version.split()[0] + ". Set PYTHON=/path/to/python3.12.")'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)
	$(BIN)/uv pip sync --quiet --python $(BIN)/python --require-hashes requirements.lock
	$(BIN)/python -m dashboards.plotly_bundle
	$(BIN)/python -m infra.axe_bundle
	touch $@

demo: $(VENV)/.installed
	bash infra/demo.sh

# Start the demo afresh: its database, broker, logins, e-mails and logs go; the environment and
# JAX's compilation cache (compiled code, no data) stay.
DEMO_VAR := $(or $(FLOURISH_VAR_DIR),var)
demo-reset:
	test ! -d "$(DEMO_VAR)" || find "$(DEMO_VAR)" -mindepth 1 -maxdepth 1 ! -name jax-cache -exec rm -rf {} +

# `make test` is the everyday suite; `make test-slow` the tests marked slow (simulation studies,
# journeys over every page, the demo launcher, real Flower deployments). CI runs both.
test: $(VENV)/.installed
	$(BIN)/python infra/services.py --roles -- $(BIN)/python -m pytest -m "$(TEST_MARKERS)" $(PYTEST_ARGS)

test-slow: TEST_MARKERS = slow
test-slow: test

bench: $(VENV)/.installed
	$(BIN)/python infra/services.py -- $(BIN)/python -m infra.bench $(BENCH_ARGS)

lint: $(VENV)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

# Re-resolve the exact versions after changing pyproject.toml's ranges.
lock: $(VENV)/.installed
	$(BIN)/uv pip compile pyproject.toml --extra dev --python-version 3.12 \
		--universal --generate-hashes --no-header \
		-o requirements.lock

# Production-like local stack (gunicorn, two workers, beat) against PostgreSQL and RabbitMQ.
stack: $(VENV)/.installed
	bash infra/stack.sh start

stack-stop:
	bash infra/stack.sh stop

clean:
	rm -rf $(VENV) var test-artifacts bench-results
