"""/health and Prometheus /metrics (streams/health.py): rendering, and the real aiohttp server."""
from __future__ import annotations

import aiohttp
import pytest

from replaylens.streams.health import Figures, HealthServer, Histogram, health_report, render_metrics
from tests.prometheus_text import parse, value


def figures(**kw) -> Figures:
    h = Histogram()
    for seconds in (0.003, 0.02, 0.02, 0.7, 42.0):
        h.observe(seconds)
    base = dict(app_id="replaylens", assigned_partitions=(0, 3), counters={"accepted": 120, "late": 2},
                open_sessions=7, buffered_events=90, consumer_lag={("replay-events", 0): 5, ("replay-events", 3): 0},
                batch_seconds=h, dead_letters={"invalid-json": 3, "late": 2}, llm_calls=10, llm_answers=7,
                llm_fallbacks={"timeout": 2, "deadline": 1}, url_deltas_applied=44)
    base.update(kw)
    return Figures(**base)


def test_metrics_are_valid_exposition_with_every_figure():
    fams = parse(render_metrics(figures()))
    assert value(fams, "replaylens_events_total", outcome="accepted") == 120
    assert value(fams, "replaylens_consumer_lag", topic="replay-events", partition="0") == 5
    assert value(fams, "replaylens_open_sessions") == 7 and value(fams, "replaylens_buffered_events") == 90
    assert value(fams, "replaylens_dead_letters_total", reason="invalid-json") == 3
    assert value(fams, "replaylens_llm_fallbacks_total", cause="deadline") == 1
    assert value(fams, "replaylens_llm_calls_total") == 10 and value(fams, "replaylens_llm_answers_total") == 7
    assert value(fams, "replaylens_healthy") == 1 and value(fams, "replaylens_assigned_partitions") == 2
    assert fams["replaylens_batch_seconds"]["type"] == "histogram"
    assert value(fams, "replaylens_batch_seconds", "replaylens_batch_seconds_bucket", le="0.005") == 1
    assert value(fams, "replaylens_batch_seconds", "replaylens_batch_seconds_bucket", le="0.025") == 3
    assert value(fams, "replaylens_batch_seconds", "replaylens_batch_seconds_bucket", le="+Inf") == 5
    assert value(fams, "replaylens_batch_seconds", "replaylens_batch_seconds_count") == 5
    assert value(fams, "replaylens_batch_seconds", "replaylens_batch_seconds_sum") == pytest.approx(42.743)


def test_label_values_are_escaped():
    fams = parse(render_metrics(figures(dead_letters={'odd "reason"\\\n': 1})))
    assert value(fams, "replaylens_dead_letters_total", reason='odd \\"reason\\"\\\\\\n') == 1


def test_health_is_503_with_the_problems():
    assert health_report(figures())[0] == 200
    code, body = health_report(figures(problems=("no tick for 40 s",)))
    assert code == 503 and body["problems"] == ["no tick for 40 s"] and body["status"] == "unhealthy"


class Source:
    def __init__(self) -> None:
        self.current = figures()

    def figures(self) -> Figures:
        return self.current


async def test_the_server_answers_health_and_metrics_over_http():
    source = Source()
    server = HealthServer(source, "127.0.0.1", 0)
    port = await server.start()
    try:
        async with aiohttp.ClientSession() as http:
            async with http.get(f"http://127.0.0.1:{port}/health") as resp:
                assert resp.status == 200 and (await resp.json())["counters"]["accepted"] == 120
            async with http.get(f"http://127.0.0.1:{port}/metrics") as resp:
                assert resp.status == 200 and resp.headers["Content-Type"].startswith("text/plain; version=0.0.4")
                assert value(parse(await resp.text()), "replaylens_open_sessions") == 7
            source.current = figures(problems=("the app crashed: RuntimeError",))
            async with http.get(f"http://127.0.0.1:{port}/health") as resp:
                assert resp.status == 503
            async with http.get(f"http://127.0.0.1:{port}/metrics") as resp:
                assert value(parse(await resp.text()), "replaylens_healthy") == 0
    finally:
        await server.stop()
