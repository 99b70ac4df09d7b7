"""The Faust application and the worker's typed context.

Faust keeps the app, its timers, the rrweb agent and the lifecycle; the hot loops run on our own
aiokafka consumers (`streams/worker.py`). Open sessions are kept durable in our own compacted
state topic, one record per session id in the partition of its events, written once per batch.
We do not use a Faust Table for it: faust-streaming's table recovery can wait forever on a
changelog whose last offset is gone (issues 176, 651 — reproduced here after a SIGKILL) and
re-delivers events after recovery. A newly assigned partition is instead read back directly,
from its start to its end offset, before any of its events are processed.

Agents and tasks live in `streams/agents.py`; this module builds the app from Settings, so tests
and benchmarks can make one per run with their own topic names.
"""
from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import faust
from aiokafka import AIOKafkaProducer

from replaylens.config.settings import Settings
from replaylens.streams.topics import BATCH_OVERHEAD_BYTES
from replaylens.streams.url_deltas import DeltaMaterializer
from replaylens.streams.wiring import Core
from replaylens.streams.worker import SessionizeLoop, SummarizeLoop, write_status

MS_PER_S = 1000


def build_app(settings: Settings, **overrides: Any) -> faust.App:
    conf: dict[str, Any] = dict(
        broker=f"kafka://{settings.kafka_bootstrap}",
        store="memory://",
        key_serializer="raw",
        value_serializer="raw",
        topic_partitions=settings.topic_partitions,
        topic_replication_factor=settings.topic_replication,
        # Recovery and first start read from the beginning: with "latest", Faust can hang in
        # recovery when segments are deleted meanwhile (faust-streaming issue 651).
        consumer_auto_offset_reset="earliest",
        web_enabled=False,
        datadir=str(settings.data_dir / "faust"),
        broker_commit_interval=1.0,
        # A restarted worker must not wait a minute for the group to drop its dead predecessor
        # (Faust's default session timeout is 60 s): see README "Operations".
        broker_session_timeout=settings.kafka_session_timeout_ms / MS_PER_S,
        broker_heartbeat_interval=settings.kafka_heartbeat_interval_ms / MS_PER_S,
        # Sizes (README 'Limits'): every record is at most max_record_bytes, so one request
        # carries it with its batch headers (the rrweb agent's events and dead letters).
        producer_max_request_size=settings.max_record_bytes + BATCH_OVERHEAD_BYTES,
        producer_compression_type=None if settings.producer_compression == "none" else settings.producer_compression,
    )
    conf.update(overrides)
    return faust.App(settings.app_id, **conf)


@dataclass
class WorkerContext:
    """One worker: its roles, the shared core, and what each role runs. The loops and the
    producer are made when the app starts (they need its event loop)."""

    settings: Settings
    app: faust.App
    core: Core
    roles: set[str]
    topics: dict[str, Any]
    producer: Optional[AIOKafkaProducer] = None
    sessionize: Optional[SessionizeLoop] = None
    summarize: Optional[SummarizeLoop] = None
    materializer: Optional[DeltaMaterializer] = None
    tasks: list[asyncio.Task] = field(default_factory=list)  # the loops (held: asyncio keeps only weak refs)
    health: Optional[Any] = None  # the /health and /metrics server, when a port is set
    alerts: Optional[Any] = None  # the alert service, when alert rules are enabled
    stopping: bool = False

    def status(self) -> dict[str, Any]:
        stage = self.core.stage
        return {
            "app_id": self.settings.app_id, "written_at": int(time.time() * MS_PER_S),
            "roles": sorted(self.roles),
            "assigned_partitions": self.sessionize.assigned() if self.sessionize else [],
            "counters": self.core.counters.as_dict(),
            "open_sessions": stage.open_sessions(), "buffered_events": stage.buffered_events(),
            "sessionize_batches": self.sessionize.batches if self.sessionize else None,
            "last_batch_ms": round(self.sessionize.last_batch_ms, 2) if self.sessionize else None,
            "sessions_summarized": self.summarize.summarized if self.summarize else None,
            "summaries_in_flight": self.summarize.in_flight if self.summarize else None,
            "summarizer_cpu_s": round(self.summarize.clock.summarizer_cpu_s, 3) if self.summarize else None,
            "url_deltas_applied": self.materializer.applied if self.materializer else None,
            "url_deltas_skipped": self.materializer.skipped if self.materializer else None,
        }

    def write_status(self) -> None:
        write_status(Path(self.settings.data_dir) / "status.json", self.status())
