# `make demo`: set up and run the whole pipeline on the bundled sample.
# `make test`: set up and run the tests (what CI runs).
VENV ?= .venv
PYTHON ?= python3
PY := $(VENV)/bin/python
USER_ID ?= 13

.PHONY: setup demo test evaluation serve clean

$(VENV)/.installed: requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -r requirements.txt
	touch $@

setup: $(VENV)/.installed

demo: setup
	$(PY) preprocess.py
	$(PY) train_rbm.py
	$(PY) recommend.py --user $(USER_ID)
	$(PY) recommend.py --goodreads data/example_goodreads_export.csv

test: setup
	$(PY) -m pytest

# The web app on http://127.0.0.1:8000/ (after `make demo` has trained a model).
serve: setup
	$(PY) serve.py

# The README's quality table: both presets and every tuned baseline on the bundled sample.
evaluation: setup
	$(PY) preprocess.py
	$(PY) train_rbm.py --preset writeup --out models/rbm-writeup.npz --plots plots/writeup --quiet
	$(PY) train_rbm.py --no-series-units --out models/rbm-no-series.npz --plots results/no-series --quiet
	$(PY) train_rbm.py --quiet
	$(PY) evaluate.py --model writeup=models/rbm-writeup.npz --model no-series-units=models/rbm-no-series.npz --model rbm=models/rbm.npz

clean:
	rm -rf data/processed models results
