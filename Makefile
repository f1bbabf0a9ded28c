# The README's commands. `make demo` and `make test` need only python3 (3.11+) and make.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test e2e bench bench-monthend bench-integrity bench-dashboards load lint typecheck format venv clean lock

$(STAMP): requirements.lock
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.lock
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	DJANGO_DEBUG=1 $(PY) scripts/devservices.py demo

test: $(STAMP)
	$(PY) manage.py compiletranslations
	$(PY) scripts/devservices.py run -- $(PY) -m pytest --cov --cov-report=term:skip-covered $(PYTEST_ARGS)

# End-to-end tests in Debian's Chromium (apt-get install chromium fonts-wqy-microhei);
# CI runs them too.
e2e: $(STAMP)
	$(PY) manage.py compiletranslations
	$(PY) scripts/devservices.py run -- $(PY) -m pytest -m e2e tests/e2e $(PYTEST_ARGS)

# Issue #17's figures in one run (~6 minutes here; BENCH_QUICK=1 for a short one):
# ingestion through gunicorn and Celery beside PostgreSQL COPY, scaling, reads and
# month-end; prints a table and writes bench-results.json; asserts nothing
# (docs/performance.md, The benchmark).
bench: $(STAMP)
	$(PY) scripts/devservices.py run -- $(PY) tests/bench/bench.py

# Month-end alone at the issue's size: every statement of a month of 20,000,000 usage
# records (BENCH_MONTH_RECORDS), time and peak memory (~15 minutes, ~12 GB of disk).
bench-monthend: $(STAMP)
	$(PY) scripts/devservices.py run -- $(PY) tests/bench/bench_monthend.py

# The nightly capacity check over a month of 2,000,000 records (BENCH_RECORDS); prints
# the time (target under a minute; docs/performance.md).
bench-integrity: $(STAMP)
	$(PY) scripts/devservices.py run -- $(PY) tests/bench/bench_integrity.py

# The dashboards, the queue, the audit page and the exports on a seed_scale city through
# gunicorn (BENCH_SCALE="applications vouchers records", default "100000 20000 2000000");
# prints median/p95 ms, query counts, export rows/s and peak RSS (docs/performance.md).
bench-dashboards: $(STAMP)
	$(PY) scripts/devservices.py run -- $(PY) tests/bench/bench_dashboards.py

# 50 data-center clients for 60 s against gunicorn and Celery workers (LOAD_ARGS, e.g.
# "--seconds 20 --clients 10"); fails unless the accounting balances to the cent and no
# request got a 5xx (docs/performance.md, Load test).
load: $(STAMP)
	$(PY) scripts/devservices.py run -- $(PY) tests/bench/load_api.py $(LOAD_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports

# mypy with the Django and DRF plugins ([tool.mypy] in pyproject.toml); CI runs it too.
typecheck: $(STAMP)
	$(VENV)/bin/mypy

format: $(STAMP)
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

lock:
	$(PY) -m piptools compile --quiet --extra dev --strip-extras --no-emit-index-url \
		--no-emit-find-links -o requirements.lock pyproject.toml

clean:
	rm -rf $(VENV) var
