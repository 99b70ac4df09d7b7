"""The real Kafka broker for tests and benchmarks, plus small aiokafka helpers.

ensure_broker() returns a bootstrap address: REPLAYLENS_TEST_BOOTSTRAP if set (a broker someone
else runs, e.g. `export REPLAYLENS_TEST_BOOTSTRAP=$(scripts/kafka.sh bootstrap)`), otherwise a
broker started by scripts/kafka.sh in a run dir private to this process. Private, so parallel test
runs never stop each other's broker; it is stopped at interpreter exit, and the script's watchdog
stops it if this process dies without cleaning up.
"""
from __future__ import annotations

import asyncio
import atexit
import os
import subprocess
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Iterable, Optional, Union

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

REPO_ROOT = Path(__file__).resolve().parent.parent
KAFKA_SCRIPT = REPO_ROOT / "scripts" / "kafka.sh"
KAFKA_VERSION = os.environ.get("REPLAYLENS_KAFKA_VERSION", "4.3.1")
START_TIMEOUT_S = 180  # covers a cold Maven fetch on first use

Key = Optional[Union[str, bytes]]
Value = Union[dict, list, bytes]


class BrokerStartError(RuntimeError):
    """scripts/kafka.sh could not start the broker; the message carries its output and log tail."""


class _Broker:
    """Process-wide broker state: started once, stopped at exit only if we started it."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.bootstrap: Optional[str] = None
        self.run_dir: Optional[Path] = None
        self.start_seconds: Optional[float] = None


_broker = _Broker()


def _script_env(run_dir: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["REPLAYLENS_KAFKA_RUN"] = str(run_dir)
    env["REPLAYLENS_KAFKA_OWNER_PID"] = str(os.getpid())
    env.setdefault("REPLAYLENS_KAFKA_VERSION", KAFKA_VERSION)
    return env


def _run_script(command: str, run_dir: Path, timeout_s: float) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["bash", str(KAFKA_SCRIPT), command],
        env=_script_env(run_dir),
        capture_output=True,
        text=True,
        timeout=timeout_s,
        stdin=subprocess.DEVNULL,
    )


def _parse_bootstrap(stdout: str) -> Optional[str]:
    for line in stdout.splitlines():
        if line.startswith("bootstrap="):
            return line.split("=", 1)[1].strip()
    return None


def ensure_broker() -> str:
    """Return the bootstrap address of a running broker, starting one if needed."""
    external = os.environ.get("REPLAYLENS_TEST_BOOTSTRAP", "").strip()
    if external:
        return external
    with _broker.lock:
        if _broker.bootstrap:
            return _broker.bootstrap
        cache_root = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "replaylens"
        cache_root.mkdir(parents=True, exist_ok=True)
        run_dir = Path(tempfile.mkdtemp(prefix="test-broker-", dir=cache_root))
        began = time.monotonic()
        try:
            result = _run_script("start", run_dir, START_TIMEOUT_S)
        except subprocess.TimeoutExpired as exc:
            _run_script("stop", run_dir, 60)
            raise BrokerStartError(f"scripts/kafka.sh start timed out after {START_TIMEOUT_S}s\n{exc.stdout or ''}{exc.stderr or ''}") from exc
        bootstrap = _parse_bootstrap(result.stdout)
        if result.returncode != 0 or not bootstrap:
            _run_script("stop", run_dir, 60)
            raise BrokerStartError(
                f"scripts/kafka.sh start exited {result.returncode}\n"
                f"--- stdout ---\n{result.stdout}\n--- stderr ---\n{result.stderr}"
            )
        _broker.bootstrap, _broker.run_dir = bootstrap, run_dir
        _broker.start_seconds = time.monotonic() - began
        atexit.register(stop_broker)
        return bootstrap


def stop_broker() -> None:
    """Stop the broker this process started (no-op for an external or absent broker)."""
    with _broker.lock:
        run_dir, _broker.bootstrap, _broker.run_dir = _broker.run_dir, None, None
    if run_dir is not None:
        _run_script("stop", run_dir, 60)
        if run_dir.exists():  # the script removes it; this only catches a failed stop
            subprocess.run(["rm", "-rf", str(run_dir)], check=False)


def broker_start_seconds() -> Optional[float]:
    """Seconds ensure_broker spent starting the broker, None if it did not start one."""
    return _broker.start_seconds


def unique_topic(prefix: str) -> str:
    """A topic name no other test or run uses: '<prefix>-<8 hex chars>'."""
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


async def create_topics(
    bootstrap: str, names: Iterable[str], partitions: int = 8, replication: int = 1, timeout_s: float = 30.0
) -> None:
    """Create topics (existing ones are left alone) and return once every partition is served."""
    names = list(names)
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=int(timeout_s * 1000))
    await admin.start()
    try:
        try:
            await admin.create_topics(
                [NewTopic(name, num_partitions=partitions, replication_factor=replication) for name in names]
            )
        except TopicAlreadyExistsError:
            pass
        described = await _wait_for_leaders(admin, names, timeout_s)
    finally:
        await admin.close()
    await _wait_until_served(bootstrap, described)


async def _wait_for_leaders(admin: AIOKafkaAdminClient, names: list[str], timeout_s: float) -> list[dict]:
    deadline = time.monotonic() + timeout_s
    while True:
        described = await admin.describe_topics(names)
        if all(
            topic["error_code"] == 0 and topic["partitions"] and all(p["leader"] >= 0 for p in topic["partitions"])
            for topic in described
        ):
            return described
        if time.monotonic() > deadline:
            raise TimeoutError(f"topics {names} have no leader after {timeout_s}s: {described}")
        await asyncio.sleep(0.1)


async def _wait_until_served(bootstrap: str, described: list[dict]) -> None:
    """Metadata names a leader a moment before that broker serves the partition, and producing in
    that window logs NotLeaderForPartition retries. ListOffsets (retried by aiokafka) answers only
    once the partitions are served."""
    partitions = [TopicPartition(t["topic"], p["partition"]) for t in described for p in t["partitions"]]
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None)
    await consumer.start()
    try:
        await consumer.end_offsets(partitions)
    finally:
        await consumer.stop()


def _encode_key(key: Key) -> Optional[bytes]:
    return key.encode() if isinstance(key, str) else key


def _encode_value(value: Value) -> bytes:
    return value if isinstance(value, bytes) else orjson.dumps(value)


async def produce_json(bootstrap: str, topic: str, records: Iterable[tuple[Key, Value]]) -> list:
    """Send (key, value) pairs; dict/list values go as JSON, bytes as they are. Returns RecordMetadata."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    await producer.start()
    try:
        sends = [await producer.send(topic, _encode_value(value), key=_encode_key(key)) for key, value in records]
        return list(await asyncio.gather(*sends))
    finally:
        await producer.stop()


async def consume_all(
    bootstrap: str, topic: str, expected_count: int, timeout_s: float = 30.0
) -> list[ConsumerRecord]:
    """Read the topic from the earliest offset until expected_count records or timeout_s passed.

    Returns what arrived (possibly fewer than expected, so the caller's assertion says how many).
    No consumer group: nothing is committed and other consumers are unaffected.
    """
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, group_id=None, auto_offset_reset="earliest", enable_auto_commit=False
    )
    await consumer.start()
    records: list[ConsumerRecord] = []
    try:
        deadline = time.monotonic() + timeout_s
        while len(records) < expected_count:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            batches = await consumer.getmany(timeout_ms=int(min(remaining, 0.5) * 1000))
            for batch in batches.values():
                records.extend(batch)
    finally:
        await consumer.stop()
    return records


async def wait_for_commits(admin: AIOKafkaAdminClient, group: str, topic: str, at_least: int,
                           timeout_s: float = 30.0) -> int:
    """Poll `group`'s committed offsets on `topic` until they sum to `at_least` (or the timeout):
    commits follow the acks, so a test reads them before it judges what was delivered."""
    deadline = time.monotonic() + timeout_s
    while True:
        offsets = await admin.list_consumer_group_offsets(group)
        committed = sum(m.offset for tp, m in offsets.items() if tp.topic == topic)
        if committed >= at_least or time.monotonic() > deadline:
            return committed
        await asyncio.sleep(0.3)
