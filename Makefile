# The two commands of the README: `make run` and `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python
CORES ?= all
CONFIG ?= config/config.yaml

.PHONY: run test dry-run clean

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || python3.11 -m venv $(VENV) || python3 -m venv $(VENV)
	$(PY) -m pip install -q -e '.[test]'
	# The original RecoGym for the parity tests: its declared dependencies drag TensorFlow.
	$(PY) -m pip install -q --no-deps recogym==0.1.3.0
	touch $@

run: $(VENV)/.installed
	$(VENV)/bin/snakemake --cores $(CORES) --configfile $(CONFIG)

test: $(VENV)/.installed
	$(PY) -m pytest -q

dry-run: $(VENV)/.installed
	$(VENV)/bin/snakemake -n --configfile $(CONFIG)

clean:
	rm -rf .snakemake logs reports/table2.* results/runs data/processed
