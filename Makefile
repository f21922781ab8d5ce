# Two commands: `make demo` (set up, fetch, build, run the models, open the dashboard) and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
export NLTK_DATA := $(CURDIR)/.cache/nltk_data
PORT ?= 8501
# make dashboard READONLY=1 (or make demo READONLY=1): no Run page, no writes; ADDRESS=0.0.0.0 serves other machines
# (with a proxy with authentication in front: docs/SERVING.md). The default address: .streamlit/config.toml.
READONLY ?=
ADDRESS ?=
STREAMLIT_RUN = $(BIN)/streamlit run dashboard/app.py --server.port $(PORT) --server.headless true \
	$(if $(ADDRESS),--server.address $(ADDRESS)) $(if $(filter-out 0 false no off,$(READONLY)),-- --read-only)

.PHONY: demo demo-intro test venv fetch build models dashboard bench screenshots clean

$(VENV)/.installed: requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements.txt
	touch $@

$(VENV)/.test-installed: $(VENV)/.installed requirements-test.txt
	$(BIN)/pip install --quiet -r requirements-test.txt
	touch $@

venv: $(VENV)/.installed

fetch: venv
	$(BIN)/python -m analysis fetch

build: fetch
	$(BIN)/python -m analysis build

models: build
	$(BIN)/python -m analysis predict --model efficientnet-lite0 --dataset samples
	$(BIN)/python -m analysis predict --model efficientnet-lite1 --dataset samples
	$(BIN)/python -m analysis predict --model efficientnet-lite2 --dataset samples

# demo-intro comes first so the URL and the expected time show before the long steps start.
demo: demo-intro models
	$(BIN)/python -m analysis info
	@echo "dashboard: http://localhost:$(PORT)  (Ctrl-C stops it)"
	$(STREAMLIT_RUN)

# The dashboard on the existing store (no fetch, build or runs first).
dashboard: venv
	@echo "dashboard: http://localhost:$(PORT)  (Ctrl-C stops it)"
	$(STREAMLIT_RUN)

demo-intro:
	@echo "make demo: venv, data fetch, store build, EfficientNet-Lite0/1/2 on the 1000 sample images, then the dashboard."
	@echo "About 11 minutes on 2 cores the first time (seconds once done); it stays in the foreground serving"
	@echo "http://localhost:$(PORT) until Ctrl-C (another port: make demo PORT=8600)."

test: $(VENV)/.test-installed
	bash scripts/system_deps.sh --browser
	$(BIN)/python -m analysis fetch
	$(BIN)/python -m pytest -q

screenshots: $(VENV)/.test-installed
	IMAGENET_ERRORS_SCREENSHOTS=1 $(BIN)/python -m pytest -q tests/dashboard/test_browser.py

bench: venv fetch
	$(BIN)/python benchmarks/bench_classify.py
	$(BIN)/python benchmarks/bench_store.py
	$(BIN)/python benchmarks/bench_inference.py
	$(BIN)/python benchmarks/bench_dashboard.py
	$(BIN)/python benchmarks/bench_zoo_import.py --models 962
	$(BIN)/python benchmarks/bench_export.py

clean:
	rm -rf $(VENV) .cache data/external data/*.duckdb
