"""Fault on the real broker: event contents never reach the worker's log (issue 9.8).

A real `replaylens worker` (log level INFO) reads messages carrying a typed card number and an
email: valid events, invalid ones, and inputs that crash or crashed the stage (invalid UTF-8
inside a string, deep nesting, a timestamp beyond int64). Its whole log is then searched for them.
"""
from __future__ import annotations

import asyncio
import re
import time

import orjson
import pytest

from tests.fault_report import FaultReport, peak_memory_kib
from tests.worker_process import TopicReader, WorkerProcess, create_topics, pipeline_env, produce, topic

pytestmark = [pytest.mark.kafka, pytest.mark.fault]

CARD = "4111 1111 1111 1111"
EMAIL = "leak.me@example.com"
SECRET_PATTERNS = [re.escape(CARD), CARD.replace(" ", ""), re.escape(EMAIL), r"leak\.me", r"4111[ -]?1111"]


def messages(now: int) -> list[tuple[bytes, bytes]]:
    typed = f"{CARD} {EMAIL}".encode()
    valid = [{"event_id": f"ok-{i}", "session_id": "s-ok", "timestamp": now - 5_000 + i, "type": t,
              "url": "https://shop.example.com/checkout", "user": {"id": "u1", "email": EMAIL},
              "target": {"selector": "input#card"}, "value": f"{CARD} {EMAIL}"}
             for i, t in enumerate(["navigate", "input-change", "session-end"])]
    bad = [
        b'{"session_id":"s-bad","timestamp":%d,"type":"input-change","value":"%s \xff"}' % (now, typed),
        b'{"session_id":"s-bad","timestamp":%d,"type":"click","value":"%s","p":' % (now, typed)
        + b"[" * 3000 + b"]" * 3000 + b"}",
        b'{"session_id":"s-bad","timestamp":1e23,"type":"click","value":"%s"}' % typed,
        orjson.dumps({"session_id": "s-bad", "timestamp": now, "type": "hover", "value": f"{CARD} {EMAIL}"}),
        b'{"session_id": "s-bad", "value": "%s", not json' % typed,
    ]
    return [(b"s-ok", orjson.dumps(v)) for v in valid] + [(b"s-bad", b) for b in bad] + [(None, bad[2])]


async def test_worker_log_holds_no_card_number_or_email(kafka_bootstrap, tmp_path):
    env = pipeline_env(kafka_bootstrap, tmp_path, REPLAYLENS_LOG_LEVEL="INFO",
                       REPLAYLENS_SESSION_GRACE_MS=1_000, REPLAYLENS_SESSION_GAP_MS=60_000)
    await create_topics(env)
    msgs = messages(int(time.time() * 1000))
    log_path = tmp_path / "worker.log"
    worker = WorkerProcess(env, log_path).start()
    report = FaultReport("log-contents", messages_in=len(msgs), expected={"s-ok": {"ok-0", "ok-1", "ok-2"}})
    try:
        await produce(kafka_bootstrap, topic(env, "events"), msgs)
        async with TopicReader(kafka_bootstrap, topic(env, "closed_sessions")) as closed:
            await closed.until(lambda rs: any(r["value"]["session_id"] == "s-ok" for r in rs), timeout_s=90)
        async with TopicReader(kafka_bootstrap, topic(env, "dead_letter")) as dlq:
            await dlq.until(lambda rs: len(rs) >= 1, timeout_s=30)
        await asyncio.sleep(2)  # let the worker log whatever it logs about them
        report.closed, report.dead_letters = closed.records, dlq.records
        report.peak_kib.append(peak_memory_kib(worker.proc.pid))
    finally:
        worker.stop()
    text = log_path.read_text(errors="replace")
    leaks = {p: len(re.findall(p, text)) for p in SECRET_PATTERNS if re.search(p, text)}
    report.extra = {"log lines": len(text.splitlines()), "withheld details": text.count("details withheld"),
                    "leaks": leaks}
    report.print()
    assert not leaks, f"event contents in the worker log: {leaks}"
    assert text.strip(), "the worker wrote no log at all: nothing was checked"
