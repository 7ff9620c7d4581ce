# The two set-up commands: `make run` and `make test`. `make bench` prints the benchmark table.
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin

.PHONY: run test lint bench bench-smoke screenshots clean

run: $(VENV)/.runtime
	$(BIN)/gunicorn -c gunicorn.conf.py wsgi:app

test: $(VENV)/.dev node_modules/.installed
	$(BIN)/ruff check .
	node --test tests/js/*.test.js
	$(BIN)/python -m pytest

# The browser tests, saving a screenshot of every page for the README and docs/.
screenshots: $(VENV)/.dev
	SCREENSHOT_DIR=docs/screenshots $(BIN)/python -m pytest -q tests/integration/test_pages.py tests/integration/test_pages_fanout.py

lint: $(VENV)/.dev
	$(BIN)/ruff check .

bench: $(VENV)/.dev bench/build/loadgen
	$(BIN)/python -m bench.run

# Every scenario at a tiny size (under a minute), so CI keeps the harness working; no figure
# is checked, only that every stream and body came through.
bench-smoke: $(VENV)/.dev bench/build/loadgen
	$(BIN)/python -m bench.run --size smoke

bench/build/loadgen: bench/loadgen.c
	mkdir -p bench/build
	gcc -O2 -Wall -o $@ $<

$(VENV)/.runtime: requirements.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements.txt
	touch $@

$(VENV)/.dev: requirements-dev.txt $(VENV)/.runtime
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $@

# The openai npm package, a real client of the relay in the tests (package-lock.json pins it).
node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --ignore-scripts
	touch $@

clean:
	rm -rf $(VENV) bench/build .pytest_cache .ruff_cache .hypothesis node_modules
