# Two jobs: `make demo` (the main job) and `make test`. Both create the
# environment in .venv on first use and reuse it afterwards.
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.mlskip-installed
PYTEST_ARGS ?=

.PHONY: setup demo test lint slow native

$(STAMP): pyproject.toml constraints.txt
	@test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(PY) -m pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[dev]'
	@touch $(STAMP)

setup: $(STAMP)

demo: setup
	$(VENV)/bin/mlskip demo

lint: setup
	$(VENV)/bin/ruff check .

# pytest exits 5 when it collected no test: for this project that means the
# suite is broken (wrong path or marker), so it fails loudly instead of passing.
test: setup lint
	@$(PY) -m pytest $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "error: pytest collected no tests"; exit 1; fi; exit $$rc

slow: setup
	$(PY) -m pytest -m slow $(PYTEST_ARGS)
