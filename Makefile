# `make demo`: set up and run the whole pipeline on the bundled sample.
# `make test`: set up and run the tests (what CI runs).
VENV ?= .venv
PYTHON ?= python3
PY := $(VENV)/bin/python
USER_ID ?= 13

.PHONY: setup demo test clean

$(VENV)/.installed: requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -r requirements.txt
	touch $@

setup: $(VENV)/.installed

demo: setup
	$(PY) preprocess.py
	$(PY) train_rbm.py
	$(PY) recommend.py --user $(USER_ID)

test: setup
	$(PY) -m pytest

clean:
	rm -rf data/processed models results
