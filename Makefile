# The two commands of the README: `make run` and `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python
CORES ?= all
CONFIG ?= config/config.yaml

.PHONY: run test dry-run clean

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || python3.11 -m venv $(VENV) || python3 -m venv $(VENV)
	$(PY) -m pip install -q -e '.[test]'
	# Without their declared dependencies (TensorFlow; old numpy/pandas pins): the original
	# RecoGym for the parity tests, and RecBole for the ml-100k copy its wheel ships
	# (bench/validate_baselines.py reads it from site-packages).
	$(PY) -m pip install -q --no-deps recogym==0.1.3.0 recbole==1.2.1
	touch $@

run: $(VENV)/.installed
	$(VENV)/bin/snakemake --cores $(CORES) --configfile $(CONFIG)

# One thread per process: the tests' networks are small, and two threads per process on
# a 2-core machine (workflow tests run two jobs at once) slow them down many times.
test: $(VENV)/.installed
	OMP_NUM_THREADS=1 $(PY) -m pytest -q

dry-run: $(VENV)/.installed
	$(VENV)/bin/snakemake -n --configfile $(CONFIG)

clean:
	rm -rf .snakemake logs reports/table2.* results/runs data/processed
