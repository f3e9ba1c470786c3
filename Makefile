# Everything runs from a virtualenv in .venv, created on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint install clean bench soak fuzz mutation

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(BIN)/orderhooks dev

# The whole suite, in random order (pytest-randomly prints its seed; `--randomly-seed=N` repeats an order).
# The fast loop is `.venv/bin/pytest -m "not e2e"`.
test: $(STAMP) browser promtool
	$(BIN)/ruff check .
	cd examples/shipping-notices && $(abspath $(BIN))/pytest -q
	$(BIN)/pytest -q

# Mutation testing of schemas/ and the read API's queries with the fast tests (see [tool.mutmut] in
# pyproject.toml). Long, and niced: not part of `make test`.
mutation: $(STAMP)
	rm -rf mutants
	nice -n 10 $(BIN)/mutmut run --max-children 2
	$(BIN)/mutmut results

# Debian's chromium for the inspector's browser tests (tests/ui). Where it cannot be
# installed, say so and go on: those tests then skip with the same message.
APT := $(shell [ "$$(id -u)" = 0 ] || echo sudo -n) env DEBIAN_FRONTEND=noninteractive apt-get
.PHONY: browser
# Under CI (CI=true) a browser that cannot be installed is an error, and so are the tests that need it.
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  { $(APT) update -qq && $(APT) install -y -qq --no-install-recommends chromium fonts-liberation; } \
	  >/dev/null 2>&1 || { echo "could not install chromium: the browser tests will be skipped"; \
	                       case "$$CI" in true|1|yes) echo "CI needs them: failing"; exit 1;; esac; }; }

# Benchmark against baselines run side by side (a few minutes; loopback only). Not part of `make test`.
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
bench: $(STAMP)
	@command -v wrk >/dev/null 2>&1 || { $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq wrk; }
	$(BIN)/python -m bench $(BENCH_ARGS)
	$(BIN)/python -m bench.soak

# The soak test: 20,000 deliveries with duplicates and shuffled versions; exits non-zero if anything is lost.
soak: $(STAMP)
	$(BIN)/python -m bench.soak

# Coverage-guided fuzzing of the normalizer (atheris is installed on demand, not a dependency).
fuzz: $(STAMP)
	$(BIN)/pip install --quiet atheris
	$(BIN)/python -m bench.fuzz_normalize -max_total_time=$${FUZZ_SECONDS:-300}

lint: $(STAMP)
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV) .orderhooks .pytest_cache mutants

# The alert rules: `promtool check rules` and the project's own `promtool test rules` cases. promtool comes
# with Debian's prometheus package, installed here when missing (never started as a service). Where it cannot
# be installed the rules are not checked, said loudly; under CI=true that fails.
.PHONY: promtool
promtool:
	@command -v promtool >/dev/null 2>&1 || { $(APT) update -qq && $(APT) install -y -qq --no-install-recommends prometheus; } >/dev/null 2>&1 || true
	@if command -v promtool >/dev/null 2>&1; then \
	  promtool check rules docs/prometheus/alerts.yml && promtool test rules docs/prometheus/tests.yml; \
	elif [ "$$CI" = true ]; then echo "promtool missing (apt-get install prometheus failed)" >&2; exit 1; \
	else echo "could not install promtool: the alert rules were NOT checked"; fi
