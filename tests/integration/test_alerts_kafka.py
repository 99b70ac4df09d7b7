"""Alerts on the real broker, through real `replaylens worker` processes.

Live traffic (timestamps = now) with short windows (2 s, sliding every 0.5 s): steady rage clicks
on four pages, then a spike on one of them. Exactly one alert, with the right figures and links,
and one all-clear; a worker killed while the spike is open and restarted does not fire it again,
nor a new-error alert it already sent.
"""
from __future__ import annotations

import asyncio
import json
import time
from typing import Any, Optional
from urllib.parse import quote

import orjson
import pytest
from aiokafka import AIOKafkaProducer

from replaylens.config.settings import Settings
from replaylens.schemas.alerts import Alert
from replaylens.streams.alerting import ensure_alert_topics
from tests.worker_process import TopicReader, WorkerProcess, create_topics, pipeline_env, topic

pytestmark = pytest.mark.kafka

SITE = "https://shop.example.com"
SPIKED = f"{SITE}/signup"   # not a cart or checkout page: no abandoned goals here
QUIET_PAGES = [f"{SITE}/", f"{SITE}/pricing", f"{SITE}/docs"]
TICK_S = 0.25
NEW_ERROR = "TypeError: cannot submit for jane.doe@example.com"
REPLAY = "https://replay.example.com"
RULES = dict(window_ms=2_000, step_ms=500, ratio=3.0, min_count=5, min_sessions=3, n=2, m=2,
             clear_windows=4, cooldown_ms=120_000, min_history_windows=8, history_windows=40,
             evaluation_delay_ms=1_500, new_error_learning_ms=0)


def alert_env(bootstrap: str, data_dir, **rules: Any) -> dict[str, str]:
    env = pipeline_env(bootstrap, data_dir, REPLAYLENS_SESSION_GAP_MS=60_000, REPLAYLENS_SESSION_GRACE_MS=2_000,
                       REPLAYLENS_REPLAY_BASE_URL=REPLAY,
                       REPLAYLENS_ALERT_RULES=json.dumps(dict(RULES, **rules)))
    env["REPLAYLENS_TOPIC_ALERTS"] = env["REPLAYLENS_TOPIC_EVENTS"].replace("-events", "-alerts")
    return env


async def create_all_topics(env: dict[str, str]) -> None:
    """The pipeline's and the alerts' topics, before any reader could auto-create one."""
    await create_topics(env)
    values = {k[len("REPLAYLENS_"):].lower(): v for k, v in env.items() if k.startswith("REPLAYLENS_")}
    await ensure_alert_topics(Settings(**values))


class Traffic:
    """Produces rage clicks now, remembering each (url, session, timestamp) it sent."""

    def __init__(self, bootstrap: str, events_topic: str) -> None:
        self.bootstrap, self.topic = bootstrap, events_topic
        self.sent: list[tuple[str, str, int]] = []
        self.seq = 0
        self.ticks = 0

    async def __aenter__(self) -> "Traffic":
        self.producer = AIOKafkaProducer(bootstrap_servers=self.bootstrap, linger_ms=5)
        await self.producer.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.producer.stop()

    async def rage(self, url: str, session_id: str, n: int = 1) -> None:
        for _ in range(n):
            self.seq += 1
            ts = int(time.time() * 1000)
            event = {"event_id": f"e{self.seq}", "session_id": session_id, "timestamp": ts, "type": "rage-click",
                     "url": url, "target": {"selector": "button#pay", "text": "Pay"}}
            await self.producer.send(self.topic, key=session_id.encode(), value=orjson.dumps(event))
            self.sent.append((url, session_id, ts))

    async def error(self, url: str, session_id: str, message: str) -> None:
        self.seq += 1
        event = {"event_id": f"e{self.seq}", "session_id": session_id, "timestamp": int(time.time() * 1000),
                 "type": "console-error", "url": url, "error": {"message": message}}
        await self.producer.send(self.topic, key=session_id.encode(), value=orjson.dumps(event))
        await self.producer.flush()

    async def tick(self, spike: bool) -> None:
        """One tick: two clicks on each quiet page, one on the spiked page every other tick; in a
        spike, six sessions rage on the spiked page, spike-0 the worst."""
        for url in QUIET_PAGES:
            for k in range(2):
                await self.rage(url, f"bg-{self.seq}-{k}")
        self.ticks += 1
        if self.ticks % 2 == 0:
            await self.rage(SPIKED, f"bg-{self.seq}-signup")
        if spike:
            for k in range(6):
                await self.rage(SPIKED, f"spike-{k}", 3 if k == 0 else 1)
        await self.producer.flush()

    async def run(self, seconds: float, spike: bool = False, alive=None) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            if alive:
                alive()
            await self.tick(spike)
            await asyncio.sleep(TICK_S)

    def in_window(self, url: str, start: int, end: int) -> list[tuple[str, str, int]]:
        return [s for s in self.sent if s[0] == url and start <= s[2] < end]


async def wait_for_observations(env: dict[str, str], traffic: Traffic, worker: WorkerProcess) -> None:
    """The map group starts at the end of the topics: produce until it passes observations on."""
    observations = f"{env['REPLAYLENS_APP_ID']}-alert-observations"
    deadline = time.monotonic() + 90
    async with TopicReader(env["REPLAYLENS_KAFKA_BOOTSTRAP"], observations) as reader:
        while not reader.records:
            assert time.monotonic() < deadline, f"no alert observations:\n{worker.tail()}"
            worker.assert_alive()
            await traffic.tick(spike=False)
            await reader.until(lambda rs: bool(rs), timeout_s=TICK_S)


def alerts_of(records: list[dict], kind: Optional[str] = None) -> list[dict]:
    for r in records:
        Alert.model_validate(r["value"])
    return [r["value"] for r in records if kind is None or r["value"]["type"] == kind]


def warmup_s() -> float:
    return (RULES["min_history_windows"] * RULES["step_ms"] + 2 * RULES["window_ms"]) / 1000


async def test_a_spike_on_one_url_yields_one_alert_with_figures_and_links_then_one_all_clear(kafka_bootstrap, tmp_path):
    env = alert_env(kafka_bootstrap, tmp_path)
    await create_all_topics(env)
    worker = WorkerProcess(env, tmp_path / "worker.log").start()
    try:
        async with Traffic(kafka_bootstrap, topic(env, "events")) as traffic:
            await wait_for_observations(env, traffic, worker)
            await traffic.run(warmup_s() + 2, alive=worker.assert_alive)     # steady: the baseline
            await traffic.run(4, spike=True, alive=worker.assert_alive)       # the spike
            async with TopicReader(kafka_bootstrap, env["REPLAYLENS_TOPIC_ALERTS"]) as reader:
                deadline = time.monotonic() + 60
                while not alerts_of(reader.records, "all-clear"):
                    assert time.monotonic() < deadline, f"no all-clear: {alerts_of(reader.records)}\n{worker.tail()}"
                    await traffic.run(1, alive=worker.assert_alive)           # steady again
                    await reader.until(lambda rs: bool(alerts_of(rs, "all-clear")), timeout_s=0.5)
                await traffic.run(3, alive=worker.assert_alive)               # nothing more comes
                await reader.until(lambda rs: False, timeout_s=2)
    finally:
        worker.stop()

    alerts = alerts_of(reader.records)
    assert [(a["type"], a["url"], a["signal"]) for a in alerts] == [
        ("spike", SPIKED, "rage-click"), ("all-clear", SPIKED, "rage-click")], alerts
    spike, clear = alerts
    status = orjson.loads((tmp_path / "alerts-status.json").read_bytes())
    assert status["alerts_published"] == 2 and status["open_spikes"] == [] and status["observations_mapped"] > 0
    assert reader.records[0]["key"] == f"{SPIKED}|rage-click".encode()
    # The figures: what was produced on the page in the alert's window, against the steady rate.
    window = spike["window"]
    assert window["end"] - window["start"] == RULES["window_ms"]
    sent = traffic.in_window(SPIKED, window["start"], window["end"])
    assert spike["current"] == len(sent)
    assert spike["sessions_affected"] == len({sid for _url, sid, _ts in sent})
    steady_per_window = RULES["window_ms"] / (2 * TICK_S * 1000)   # one click every other tick
    assert spike["baseline_basis"] == "recent-windows"
    assert steady_per_window / 2 <= spike["baseline"] <= steady_per_window * 2
    assert spike["current"] >= RULES["ratio"] * spike["baseline"]
    assert spike["ratio"] == pytest.approx(spike["current"] / spike["baseline"], abs=0.01)
    assert spike["windows_over"] >= RULES["n"]
    # Links: the worst session first, time-coded at its first rage click in the window.
    worst = spike["sessions"][0]
    first = min(ts for _u, sid, ts in sent if sid == "spike-0")
    assert worst["session_id"] == "spike-0" and worst["count"] == max(s["count"] for s in spike["sessions"])
    assert worst["link"] == f"{REPLAY}/sessions/{quote('spike-0', safe='')}?t={first}"
    assert len(spike["sessions"]) == 5
    assert clear["spike_id"] == spike["alert_id"] and clear["at"] > spike["at"]
    assert clear["current"] < RULES["ratio"] * clear["baseline"]


async def test_a_restarted_worker_does_not_refire_an_open_spike(kafka_bootstrap, tmp_path):
    env = alert_env(kafka_bootstrap, tmp_path)
    await create_all_topics(env)
    first = WorkerProcess(env, tmp_path / "worker-1.log").start()
    second: Optional[WorkerProcess] = None
    try:
        async with Traffic(kafka_bootstrap, topic(env, "events")) as traffic:
            await wait_for_observations(env, traffic, first)
            await traffic.run(warmup_s() + 2, alive=first.assert_alive)
            async with TopicReader(kafka_bootstrap, env["REPLAYLENS_TOPIC_ALERTS"]) as reader:
                deadline = time.monotonic() + 30
                while not alerts_of(reader.records, "spike"):
                    assert time.monotonic() < deadline, f"no spike alert:\n{first.tail()}"
                    await traffic.run(0.5, spike=True, alive=first.assert_alive)
                    await reader.until(lambda rs: bool(alerts_of(rs, "spike")), timeout_s=0.2)
                for k in range(3):   # a new error in three sessions (a writer's email in it, masked)
                    await traffic.error(SPIKED, f"err-{k}", NEW_ERROR)
                await traffic.run(3, spike=True, alive=first.assert_alive)    # its state is written
                first.kill()                                                  # SIGKILL, spike open
                second = WorkerProcess(env, tmp_path / "worker-2.log").start()
                await traffic.run(12, spike=True, alive=second.assert_alive)  # the spike goes on
                for k in range(3):   # the same error again: known now, also to the restarted worker
                    await traffic.error(SPIKED, f"err-again-{k}", NEW_ERROR)
                deadline = time.monotonic() + 60
                while not alerts_of(reader.records, "all-clear"):
                    assert time.monotonic() < deadline, f"no all-clear:\n{second.tail()}"
                    await traffic.run(1, alive=second.assert_alive)
                    await reader.until(lambda rs: bool(alerts_of(rs, "all-clear")), timeout_s=0.5)
    finally:
        first.kill()
        if second is not None:
            second.stop()

    spikes, clears = alerts_of(reader.records, "spike"), alerts_of(reader.records, "all-clear")
    assert len(spikes) == 1, spikes
    assert len(clears) == 1 and clears[0]["spike_id"] == spikes[0]["alert_id"]
    # the all-clear came from the restarted worker, which resumed the open spike
    assert clears[0]["at"] > spikes[0]["at"] + 12_000
    new_errors = alerts_of(reader.records, "new-error")
    assert len(new_errors) == 1, new_errors
    assert new_errors[0]["url"] == SPIKED and new_errors[0]["sessions_affected"] == 3
    assert new_errors[0]["error_key"] == "js: TypeError: cannot submit for [email]"
    assert "jane.doe" not in json.dumps(alerts_of(reader.records))
