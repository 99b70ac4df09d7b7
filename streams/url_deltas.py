"""Every worker materializes ALL per-URL deltas into its own DuckDB file.

Sessions are partitioned by session id, so each worker closes only some of them; a URL's figures
must still cover every session. Workers publish their sessions' deltas to the url-deltas topic (in
batches, aggregates/deltas.py `encode_delta_records`) and each worker reads every partition of it (a consumer without a group, assigned all partitions),
applying batches to its own file. Applying is idempotent by delta id, so reading from the start
after a restart, or a redelivered delta, never counts twice.
"""
from __future__ import annotations

import asyncio
import logging
from typing import Any, Iterable, Optional

from aiokafka import AIOKafkaConsumer

from replaylens.aggregates.deltas import UrlDelta, decode_delta_record
from replaylens.aggregates.store import AggregateStore
from replaylens.streams.consumers import stop_reader

log = logging.getLogger("replaylens.aggregates")

# One DuckDB transaction per poll: its fixed cost is large next to a row's, so the materializer
# waits up to a second to collect up to 20,000 deltas (the baseline lags by at most that second).
APPLY_EVERY_MS = 1_000
APPLY_MAX_RECORDS = 20_000


class DeltaMaterializer:
    def __init__(self, bootstrap: str, topic: str, store: AggregateStore, batch_ms: int = APPLY_EVERY_MS,
                 max_records: int = APPLY_MAX_RECORDS) -> None:
        self.bootstrap, self.topic, self.store = bootstrap, topic, store
        self.batch_ms, self.max_records = batch_ms, max_records
        self.applied = 0
        self.skipped = 0  # malformed records on the topic (counted, logged, not applied)
        self._task: Optional[asyncio.Task] = None
        self._consumer: Optional[AIOKafkaConsumer] = None

    async def start(self) -> None:
        # No consumer group: this worker is assigned every partition of the topic.
        self._consumer = AIOKafkaConsumer(self.topic, bootstrap_servers=self.bootstrap, group_id=None,
                                          enable_auto_commit=False, auto_offset_reset="earliest",
                                          fetch_max_wait_ms=self.batch_ms, max_poll_records=self.max_records)
        await self._consumer.start()
        self._task = asyncio.create_task(self._run(), name="url-delta-materializer")

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.batch_ms / 1000)  # let a batch build up: one transaction for it
            batches = await self._consumer.getmany(timeout_ms=self.batch_ms, max_records=self.max_records)
            deltas = self._decoded_all(rec for recs in batches.values() for rec in recs)
            if deltas:
                # DuckDB calls block; keep the event loop (Kafka heartbeats) free.
                self.applied += await asyncio.to_thread(self.store.apply, deltas)

    def _decoded_all(self, records: Iterable[Any]) -> list[UrlDelta]:
        """The records' deltas (a record holds a batch, or one delta in the first format); a
        malformed record is logged (origin only) and counted, not fatal."""
        deltas: list[UrlDelta] = []
        for rec in records:
            try:
                deltas += decode_delta_record(rec.value)
            except (ValueError, TypeError, AttributeError) as exc:
                self.skipped += 1
                log.warning("url deltas %s[%s]@%s skipped: %s", rec.topic, rec.partition, rec.offset,
                            type(exc).__name__)
        return deltas

    async def stop(self) -> None:
        await stop_reader(self._task, self._consumer)
