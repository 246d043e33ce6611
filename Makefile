# alliance_lib: the two commands of the README are `make report` and `make test`.
# Both create .venv when it is missing, install the project with the extras they need, and
# reuse .venv afterwards (a stamp file per extra set; re-installs when pyproject.toml changes).

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
WAVE   ?= 3
STUDY  ?= data/demo/study.yaml
export MPLBACKEND := Agg
export PYTHONHASHSEED := 0

.PHONY: report test lint unit notebooks lab demo-data bench clean-reports help

help:
	@echo "make report     set up .venv and run the demo study report (wave $(WAVE))"
	@echo "make test       set up .venv and run ruff, unit tests + doctests, and every notebook"
	@echo "make lab        JupyterLab on notebooks/ with the project's kernel"
	@echo "make demo-data  regenerate data/demo/ (byte-identical)"
	@echo "make bench      benchmarks (results in benchmarks/results/)"

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.stamp-%: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e ".[$(subst +,$(comma),$*)]"
	@touch $@

comma := ,

report: $(VENV)/.stamp-notebooks
	$(BIN)/alliance report $(STUDY) --wave $(WAVE)

test: $(VENV)/.stamp-notebooks+dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/pytest
	$(BIN)/pytest -o addopts="-p no:cacheprovider" --nbval-lax --nbval-current-env notebooks

lab: $(VENV)/.stamp-notebooks+lab
	$(BIN)/jupyter lab --notebook-dir=notebooks

demo-data: $(VENV)/.stamp-notebooks
	$(BIN)/alliance simulate --demo-study data/demo

bench: $(VENV)/.stamp-notebooks+dev
	@for b in benchmarks/bench_*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

clean-reports:
	rm -rf reports
