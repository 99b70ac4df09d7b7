"""Run `replaylens worker` as a real subprocess against the test broker, and read topics back."""
from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any, Callable, Optional

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

ROOT = Path(__file__).resolve().parents[1]


def pipeline_env(bootstrap: str, data_dir: Path, prefix: Optional[str] = None, **extra: Any) -> dict[str, str]:
    """REPLAYLENS_* settings for one isolated pipeline: its own topics, group and files."""
    prefix = prefix or f"t{uuid.uuid4().hex[:8]}"
    env = dict(os.environ)
    env.update({
        "REPLAYLENS_KAFKA_BOOTSTRAP": bootstrap,
        "REPLAYLENS_APP_ID": f"{prefix}-app",
        "REPLAYLENS_DATA_DIR": str(data_dir),
        "REPLAYLENS_DUCKDB_PATH": str(data_dir / "aggregates.duckdb"),
        "REPLAYLENS_TOPIC_PARTITIONS": "4",
        "REPLAYLENS_TICK_INTERVAL_S": "0.5",
        "REPLAYLENS_LOG_LEVEL": "WARNING",
        "REPLAYLENS_METRICS_PORT": "0",  # not served unless a test asks: parallel workers, no clashes
        "REPLAYLENS_METRICS_HOST": "127.0.0.1",
        "PYTHONPATH": str(ROOT),
    })
    for name in ("events", "rrweb", "dead_letter", "closed_sessions", "summaries", "url_deltas", "rekeyed"):
        env[f"REPLAYLENS_TOPIC_{name.upper()}"] = f"{prefix}-{name.replace('_', '-')}"
    env.update({k: str(v) for k, v in extra.items()})
    return env


def topic(env: dict[str, str], name: str) -> str:
    return env[f"REPLAYLENS_TOPIC_{name.upper()}"]


class WorkerProcess:
    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        self.env, self.log_path = env, log_path
        self.proc: Optional[subprocess.Popen] = None

    def start(self) -> "WorkerProcess":
        self.log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([sys.executable, "-m", "replaylens.cli", "worker"], env=self.env,
                                     cwd=ROOT, stdout=self.log, stderr=subprocess.STDOUT)
        return self

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(30)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.kill()
        self.log.close()

    def terminate(self, timeout_s: float = 60) -> tuple[float, Optional[int]]:
        """SIGTERM and wait: (seconds to exit, return code); SIGKILL and None past the timeout."""
        assert self.proc is not None
        started = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        try:
            code: Optional[int] = self.proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.kill()
            code = None
        self.log.close()
        return time.monotonic() - started, code

    def tail(self, n: int = 60) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except FileNotFoundError:
            return ""

    def assert_alive(self) -> None:
        assert self.proc is not None and self.proc.poll() is None, f"worker exited:\n{self.tail()}"


async def create_topics(env: dict[str, str]) -> None:
    """Create the pipeline's topics as the worker would, before anything is produced (broker
    auto-creation would pick its own partition count)."""
    from replaylens.config.settings import Settings
    from replaylens.streams.topics import ensure_topics

    values = {k[len("REPLAYLENS_"):].lower(): v for k, v in env.items() if k.startswith("REPLAYLENS_")}
    await ensure_topics(Settings(**values))


async def produce(bootstrap: str, topic_name: str, records: list[tuple[Optional[bytes], bytes]],
                  max_request_size: int = 1024 * 1024) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=10, acks="all",
                                max_request_size=max_request_size)
    await producer.start()
    try:
        futs = [await producer.send(topic_name, value=v, key=k) for k, v in records]
        for f in futs:
            await f
    finally:
        await producer.stop()


def delta_ids(records: list[Any]) -> set[str]:
    """The ids of the url deltas in records of the url-deltas topic (each holds a batch)."""
    return {d["delta_id"] for r in records for d in r["value"]["deltas"]}


class TopicReader:
    """Reads every partition of a topic from the start, accumulating decoded records."""

    def __init__(self, bootstrap: str, topic_name: str) -> None:
        self.bootstrap, self.topic = bootstrap, topic_name
        self.records: list[Any] = []

    async def __aenter__(self) -> "TopicReader":
        # No group: every partition is assigned, nothing is committed.
        self.consumer = AIOKafkaConsumer(self.topic, bootstrap_servers=self.bootstrap, group_id=None,
                                         auto_offset_reset="earliest", enable_auto_commit=False)
        await self.consumer.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.consumer.stop()

    async def until(self, done: Callable[[list[Any]], bool], timeout_s: float,
                    alive: Optional[Callable[[], None]] = None) -> list[Any]:
        """Read until done(records) or the timeout; the caller's assertions say what is missing."""
        deadline = time.monotonic() + timeout_s
        while not done(self.records):
            if time.monotonic() > deadline:
                return self.records
            if alive:
                alive()
            batch = await self.consumer.getmany(timeout_ms=300)
            for recs in batch.values():
                for r in recs:
                    self.records.append({"key": r.key, "value": orjson.loads(r.value),
                                         "partition": r.partition, "offset": r.offset})
        return self.records
