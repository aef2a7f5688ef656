# Face clustering: `make demo` and `make test` are all a new user needs.
PY := .venv/bin/python
FACES_DATA ?= $(wildcard ../shared/datasets)
export FACES_DATA

.PHONY: install demo demo-people known dataset test lint bench bench-dask quality quality-lfw bench-scale bench-search verify clean help

help:
	@echo "make demo    install, build the sample dataset/, encode, cluster, write output/"
	@echo "make demo-people  after make demo: names from known/ (other LFW photos of 4 demo people), then a search"
	@echo "make test    install test tools, check the code (make lint: ruff) and run the test suite"
	@echo "make bench   encoding speed against the tutorial's loop (writes bench-results/)"
	@echo "make bench-dask  two local Dask workers against the local process pool (docs/dask.md)"
	@echo "make quality every clustering method on every labelled set, leave-one-set-out, and LFW verification"
	@echo "make quality-lfw  the parameter sweeps on LFW bench-3474 and demo"
	@echo "make bench-scale  time and peak memory of clustering 10k, 100k and 1M synthetic faces"
	@echo "make bench-search  search_faces.py's load time, query time and memory at 10k, 100k and 1M synthetic faces"
	@echo "make verify  LFW verification, 10 folds, beside dlib's published 99.38%"

.venv/.installed: requirements.txt requirements-nodeps.txt tools/install.sh pyproject.toml
	tools/install.sh
	@touch $@

# requirements-dev.txt pins every package, dependencies too: uv installs the set as it is (--no-deps),
# from its cache when that holds it (as tools/install.sh does), then the new modules are byte-compiled.
UV := .venv/bin/uv pip install --quiet --python $(PY) --no-deps
.venv/.installed-dev: .venv/.installed requirements-dev.txt tools/install-test-tools.sh
	$(UV) --offline -r requirements-dev.txt 2>/dev/null || $(UV) -r requirements-dev.txt
	$(PY) -m compileall -q -j 0 -x '/tests?/' .venv/lib >/dev/null
	tools/install-test-tools.sh
	@touch $@

install: .venv/.installed

dataset/00000000.jpg: | .venv/.installed
	$(PY) -m facecluster.sample_data --dataset dataset --key dataset.key.csv

dataset: dataset/00000000.jpg

demo: .venv/.installed dataset/00000000.jpg
	$(PY) encode_faces.py --dataset dataset --encodings encodings.pickle
	$(PY) cluster_faces.py --encodings encodings.pickle --output output --labels dataset.key.csv
	@echo "[INFO] montages, clusters.csv and index.html are in output/"

known/.built: | .venv/.installed
	$(PY) -m facecluster.sample_data --known known
	@touch $@

known: known/.built

demo-people: .venv/.installed dataset/00000000.jpg known/.built
	$(PY) encode_faces.py --dataset dataset --encodings encodings.pickle
	$(PY) cluster_faces.py --encodings encodings.pickle --method adaptive --known known --output output
	$(PY) search_faces.py --encodings encodings.pickle --query known/Alejandro_Toledo --output found

# Every core (xdist), a test file to a worker: its module fixtures (a Dask cluster, a browser) are made once;
# the files in collection order, the slowest first (tests/conftest.py: SLOWEST_FIRST).
# One BLAS/OpenMP thread a process: the workers already fill the cores, and the scripts they start each
# spawning a thread per core only fought for them (2 cores: 209 s -> 170-179 s, user CPU 5:40 -> 4:28-4:50).
# The package is byte-compiled first: where .pyc files may not be written (PYTHONDONTWRITEBYTECODE),
# each of the ~150 script runs the tests start compiled it again (~0.08 s CPU a run).
test: lint
	$(PY) -m compileall -q facecluster >/dev/null
	OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1 $(PY) -m pytest -q -n auto --dist loadfile --no-loadscope-reorder tests

lint: .venv/.installed-dev
	$(PY) -m ruff check --quiet .

bench: .venv/.installed-dev
	$(PY) benchmarks/run.py

bench-dask: .venv/.installed-dev
	$(PY) benchmarks/dask_overhead.py

quality: .venv/.installed-dev
	$(PY) benchmarks/quality_sets.py
	$(PY) benchmarks/people_quality.py
	$(PY) benchmarks/tutorial_sets.py
	$(PY) benchmarks/lfw_verification.py

quality-lfw: .venv/.installed-dev
	$(PY) benchmarks/quality.py

bench-scale: .venv/.installed-dev
	$(PY) benchmarks/scale.py

bench-search: .venv/.installed-dev
	$(PY) benchmarks/search_scale.py

verify: .venv/.installed-dev
	$(PY) benchmarks/lfw_verification.py

clean:
	rm -rf output found known encodings.pickle encodings.pickle.* dataset/*.jpg dataset.key.csv
