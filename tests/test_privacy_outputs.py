"""No planted secret reaches any output: closed sessions, summaries, dead letters, DuckDB, logs,
LLM prompts (the topics are checked in tests/integration/test_privacy_kafka.py)."""
from __future__ import annotations

import asyncio
import logging

import duckdb
import orjson

from replaylens.config.settings import Settings
from replaylens.schemas.profiles import DEFAULT_PROFILE
from replaylens.sinks.builtin import BuiltinSummarizer
from replaylens.sinks.llm_client import ChatClient
from replaylens.sinks.llm_summarizer import LlmSummarizer
from replaylens.streams.embedded import EmbeddedPipeline
from tests import labelled_sessions as labelled
from tests.chat_server import ChatServer

SECRET_DEAD_LETTER = {"session_id": "secrets", "timestamp": 1_700_000_000_500, "type": "not-a-type",
                      "url": "https://app.test/login?password=hunter2-Sup3rSecret",
                      "user": {"email": "alice@example.com"}, "value": "4111 1111 1111 1111"}


def messages() -> list[bytes]:
    events = labelled.with_secrets()["events"] + labelled.failing_signup()["events"]
    return [orjson.dumps(e) for e in sorted(events, key=lambda e: e["timestamp"])] + [orjson.dumps(SECRET_DEAD_LETTER)]


def assert_clean(text: str, where: str) -> None:
    for secret in labelled.PLANTED_SECRETS:
        assert secret not in text, f"{secret!r} leaked into {where}"


def test_no_planted_secret_in_files_duckdb_or_logs(tmp_path, caplog):
    settings = Settings(data_dir=tmp_path, duckdb_path=tmp_path / "r.duckdb",
                        summaries_path=tmp_path / "summaries.ndjson", privacy_identity_secret="k")
    caplog.set_level(logging.DEBUG)
    report = asyncio.run(EmbeddedPipeline(settings, examples=3).run(messages(), progress=False))
    assert report.counters["sessions_closed"] == 2 and report.dead_letters["invalid-event"] == 1
    files = sorted(tmp_path.glob("*.ndjson"))
    assert {f.name for f in files} == {"summaries.ndjson", "closed-sessions.ndjson", "dead-letters.ndjson", "alerts.ndjson"}
    for path in files:
        assert_clean(path.read_text(), path.name)
    closed = [orjson.loads(line) for line in (tmp_path / "closed-sessions.ndjson").read_bytes().splitlines()]
    secrets_session = next(s for s in closed if s["session_id"] == "secrets")
    assert secrets_session["context"]["user"]["email"].startswith("hmac:")  # findable, not readable
    assert secrets_session["context"]["org"]["name"].startswith("hmac:")
    con = duckdb.connect(str(tmp_path / "r.duckdb"), read_only=True)
    try:
        for (table,) in con.execute("SELECT table_name FROM information_schema.tables").fetchall():
            assert_clean(repr(con.execute(f'SELECT * FROM "{table}"').fetchall()), f"DuckDB {table}")
    finally:
        con.close()
    assert_clean("\n".join(r.getMessage() for r in caplog.records), "logs")
    assert_clean(repr(report.examples), "the run report")


async def test_no_planted_secret_in_llm_prompts():
    server = ChatServer()
    await server.start()
    try:
        builtin = BuiltinSummarizer()
        client = ChatClient(server.base_url, "", "m", max_retries=0)
        llm = LlmSummarizer(client, builtin)
        # unmasked input on purpose: the prompt masks again whatever reaches it
        summary = await llm.summarize(labelled.with_secrets(), DEFAULT_PROFILE, generated_at=0)
        await client.close()
    finally:
        await server.stop()
    assert server.requests, summary.fallback_reason
    assert_clean(orjson.dumps(server.requests).decode(), "the LLM prompt")
    assert_clean(summary.model_dump_json(), "the summary")
    prompt = server.requests[0]["messages"][1]["content"]
    assert "password=[masked]" in prompt and '"plan":"pro"' in prompt
