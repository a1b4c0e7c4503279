# marketrank: `make run` runs the product, `make test` runs the tests. Both set themselves up:
# a virtualenv in .venv with the package installed editable, and redis-server from Debian
# (`make test` also chromium and chromium-driver, for the chat page's browser test).

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test test-fast bench bench-ranking bench-load bench-track-records chaos redis-server browser clean
# Test processes (pytest-xdist): each has its own Redis, worker and servers. Three on two cores, as
# the tests mostly wait on them (docs/benchmarks.md, "Test suite": 8 min 3 s with two, 6 min 16 s with three).
TEST_PROCESSES ?= 3

# A venv without pip (python3-venv missing when it was made) is made again, not reused.
$(STAMP): pyproject.toml
	@test -x $(BIN)/pip || { rm -rf $(VENV); $(PYTHON) -m venv $(VENV) 2>/dev/null; } || { \
	  rm -rf $(VENV); \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "Installing python3-venv from Debian's packages..."; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null && \
	    $(PYTHON) -m venv $(VENV); \
	  else \
	    echo "$(PYTHON) -m venv failed: run 'sudo apt-get install -y python3-venv' (Python 3.11 or newer; PYTHON=python3.12 make ... picks another)"; \
	    exit 1; \
	  fi; }
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	@touch $(STAMP)

redis-server:
	@command -v redis-server >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "Installing redis-server from Debian's packages..."; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null; \
	  else \
	    echo "redis-server is missing: run 'sudo apt-get update && sudo apt-get install -y redis-server'"; \
	    exit 1; \
	  fi; }

# The chat page's test drives Debian's chromium through chromium-driver (selenium).
browser:
	@{ command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; } || { \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "Installing chromium and chromium-driver from Debian's packages..."; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null; \
	  else \
	    echo "chromium is missing: run 'sudo apt-get update && sudo apt-get install -y chromium chromium-driver'"; \
	    exit 1; \
	  fi; }

run: $(STAMP) redis-server
	$(BIN)/python -m launcher.run

test: $(STAMP) redis-server browser
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy analysis bot cli launcher listener tasks wiring
	$(BIN)/python -m pytest -q -n $(TEST_PROCESSES) --dist worksteal

# While developing: every test but the end-to-end and slow ones (markers in pyproject.toml).
test-fast: $(STAMP) redis-server
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python -m pytest -q -n $(TEST_PROCESSES) --dist worksteal -m "not slow and not e2e"

bench: $(STAMP) redis-server
	$(BIN)/python -m bench.steps_bench
	$(BIN)/python -m bench.metrics_bench
	$(BIN)/python -m bench.tap_bench
	$(BIN)/python -m bench.live_data_bench
	$(BIN)/python -m bench.market_choice_bench
	$(BIN)/python -m bench.track_bench

# The track record's replay, record size and Redis per 1,000 records (docs/track-record.md).
.PHONY: bench-track
bench-track: $(STAMP) redis-server
	$(BIN)/python -m bench.track_bench

bench-ranking: $(STAMP)
	$(BIN)/python -m bench.ranking_bench
	$(BIN)/python -m bench.ranking_frontier
	$(BIN)/python -m bench.listwise_bench --runs 30

bench-track-records: $(STAMP) redis-server
	$(BIN)/python -m bench.track_records_bench

bench-load: $(STAMP) redis-server
	$(BIN)/python -m bench.load_bench
	$(BIN)/python -m bench.storage_bound_bench

chaos: $(STAMP) redis-server
	$(BIN)/python -m bench.chaos

.PHONY: bench-sentinel
bench-sentinel: $(STAMP) redis-server
	$(BIN)/python -m bench.sentinel_bench

clean:
	rm -rf $(VENV) var *.egg-info

.PHONY: bench-webhooks
bench-webhooks: $(STAMP) redis-server
	$(BIN)/python -m bench.webhooks_bench

.PHONY: lint format
# Lint and format with ruff (config in pyproject.toml); make test and make test-fast run the checks.
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# Rewrites the tree: ruff format, then the lint fixes ruff can make safely.
format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .
