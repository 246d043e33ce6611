# alliance_lib: the two commands of the README are `make report` and `make test`.
# Both create .venv when it is missing and install the exact, hash-checked versions of
# requirements/lock.txt (made by `make lock` from pyproject.toml), then the project itself without
# dependencies; .venv is reused afterwards (re-installed when the lock or pyproject.toml changes).

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
WAVE   ?= 3
STUDY  ?= data/demo/study.yaml
export MPLBACKEND := Agg
export PYTHONHASHSEED := 0

.PHONY: lock test-latest report test lint unit notebooks lab demo-data bench clean-reports help template-copy book handouts

help:
	@echo "make report     set up .venv and run the demo study report (wave $(WAVE))"
	@echo "make test       set up .venv and run ruff, unit tests + doctests, and every notebook"
	@echo "make lab        JupyterLab on a working copy of notebooks/ (work/, git-ignored)"
	@echo "make demo-data  regenerate data/demo/ (byte-identical)"
	@echo "make bench      benchmarks (results in benchmarks/results/)"
	@echo "make lock       regenerate requirements/lock.txt from pyproject.toml"
	@echo "make test-latest  the tests with the newest dependency versions (.venv-latest)"
	@echo "make book       the course site of notebooks/teaching/ (executed) in book/index.html"
	@echo "make handouts   student (no solutions) and instructor versions of the lessons in handouts/"

LOCK   := requirements/lock.txt
UV_VERSION := 0.13.9
STAMP  := $(VENV)/.stamp-lock

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml $(LOCK) | $(BIN)/python
	$(BIN)/python -m pip install --quiet --require-hashes --no-deps -r $(LOCK)
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	@touch $@

# Regenerate the lock from pyproject.toml (all extras, Python 3.11, Linux x86-64), with uv.
lock: | $(BIN)/python
	$(BIN)/python -m pip install --quiet "uv==$(UV_VERSION)"
	$(BIN)/uv pip compile pyproject.toml requirements/build.in --extra notebooks --extra dev \
	  --extra lab --extra distributed --generate-hashes --python-version 3.11 \
	  --python-platform x86_64-manylinux_2_28 \
	  --no-header --annotation-style line -o $(LOCK)

# The suite against the newest releases of every dependency, in a separate venv.
test-latest:
	$(PYTHON) -m venv .venv-latest
	.venv-latest/bin/python -m pip install --quiet --upgrade --upgrade-strategy eager setuptools wheel -e ".[notebooks,dev]"
	.venv-latest/bin/python -m pip list --format=freeze | grep -iE '^(numpy|scipy|pandas|statsmodels|matplotlib)=='
	.venv-latest/bin/pytest -q

report: $(STAMP)
	$(BIN)/alliance report $(STUDY) --wave $(WAVE)

# One pytest run on TEST_WORKERS processes (pytest-xdist): the unit tests, the doctests and every
# notebook of notebooks/ through nbval. --dist loadgroup keeps on one worker the cells of a
# notebook and the tests sharing a module-scoped fixture (tests/conftest.py groups them); the
# report template is run by the report tests, not by nbval (it needs its parameters); the 15
# slowest tests are listed at the end, to keep an eye on the 15-minute budget.
TEST_WORKERS ?= 2
test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/pytest -n $(TEST_WORKERS) --dist loadgroup --durations=15 --nbval-lax --nbval-current-env \
	  --ignore=alliance_lib/templates tests alliance_lib notebooks

# JupyterLab on a working copy (work/, git-ignored; copied once, never overwritten), so running a
# notebook never writes outputs into the tracked one
lab: $(STAMP)
	@mkdir -p work && cp -rn notebooks/. work/
	$(BIN)/jupyter lab --notebook-dir=work

demo-data: $(STAMP)
	$(BIN)/alliance simulate --demo-study data/demo

bench: $(STAMP)
	@for b in benchmarks/bench_*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

# The course site and handouts (alliance_lib/course.py): every lesson NN-*.ipynb in notebooks/teaching/.
book: $(STAMP)
	$(BIN)/python -m alliance_lib.course book --lessons notebooks/teaching --out book

handouts: $(STAMP)
	$(BIN)/python -m alliance_lib.course handouts --lessons notebooks/teaching --out handouts --html

template-copy:
	cp alliance_lib/templates/study_report.ipynb notebooks/study_report.ipynb

clean-reports:
	rm -rf reports
