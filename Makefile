# Two commands do everything on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
RUN_STAMP := $(VENV)/.installed-run

.PHONY: venv demo test bench docs clean

venv: $(STAMP)

# torch is pinned in pyproject.toml; installing it first keeps pip on the CPU wheel. The demo needs envsound[all]; the
# suite adds the dev tools (test runner, browser driver, reference metrics, API fuzzer) on top.
$(RUN_STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e ".[all]"
	touch $(RUN_STAMP)

$(STAMP): $(RUN_STAMP)
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $(STAMP)

demo: $(RUN_STAMP)
	$(BIN)/envsound demo --out runs/demo

# Two pytest workers (one on a 1-core machine), each pinned to its share of the cores (tests/conftest.py); a test file
# stays on one worker, so its module fixtures are built once. Two workers halved the suite's time on 2 cores
# (docs/results.md); more were not tried.
TEST_WORKERS ?= $(shell n=$$(nproc 2>/dev/null || echo 1); [ $$n -gt 2 ] && echo 2 || echo $$n)

# The browser tests drive Debian's chromium, the store's tests start Debian's PostgreSQL server: each installed here
# when missing and allowed (root), else those tests skip and say why.
test: $(STAMP)
	@command -v chromium >/dev/null || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
	  (apt-get install -y -q chromium >/dev/null 2>&1 || (apt-get update -q && apt-get install -y -q chromium) \
	  >/dev/null 2>&1); } || echo "chromium could not be installed: the browser tests will skip"
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null \
	  && (apt-get install -y -q postgresql >/dev/null 2>&1 || (apt-get update -q && apt-get install -y -q \
	  postgresql) >/dev/null 2>&1); } || echo "postgresql could not be installed: the PostgreSQL tests will skip"
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist loadfile

# The prediction and serving figures (each makes its own throwaway model); the other benchmarks take the options
# docs/benchmarks.md gives with their results.
bench: $(STAMP)
	$(BIN)/python benchmarks/bench_latency.py
	$(BIN)/python benchmarks/bench_predict.py
	$(BIN)/python benchmarks/bench_server.py

# The documentation site with the API reference from the docstrings (mkdocs.yml), into site/; strict: any warning
# fails, as in the suite (tests/test_docs_build.py). `$(BIN)/mkdocs serve` shows it while you edit.
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

clean:
	rm -rf $(VENV) runs .pytest_cache site
