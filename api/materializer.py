"""Kafka -> the API's store: closed sessions, summaries and feedback, from stored offsets.

No consumer group: the API reads every partition itself and keeps its offsets in its own
DuckDB file, committed with the rows they produced (a restart neither skips nor doubles).
"""
from __future__ import annotations

import asyncio
import logging
from typing import Optional

from aiokafka import AIOKafkaConsumer, TopicPartition

from replaylens.api.store import ApiStore
from replaylens.config.settings import Settings
from replaylens.streams.profiles_topic import topic_partitions
from replaylens.streams.consumers import stop_reader

log = logging.getLogger("replaylens.api")

POLL_MS = 200
MAX_RECORDS = 2000
MAX_PARTITION_FETCH_BYTES = 4 * 1024 * 1024  # closed sessions are large: fetch more per partition
RETRY_AFTER_FAILURE_S = 1.0


def materialized_topics(s: Settings) -> dict[str, str]:
    """Topic name -> the kind of record it holds."""
    return {s.topic_closed_sessions: "closed", s.topic_summaries: "summaries", s.topic_feedback: "feedback"}


class StoreMaterializer:
    def __init__(self, s: Settings, store: ApiStore) -> None:
        self.settings, self.store = s, store
        self.topics = materialized_topics(s)
        self.applied = 0
        self.caught_up = asyncio.Event()
        self._consumer: Optional[AIOKafkaConsumer] = None
        self._task: Optional[asyncio.Task] = None

    async def start(self) -> None:
        consumer = AIOKafkaConsumer(bootstrap_servers=self.settings.kafka_bootstrap, group_id=None,
                                    enable_auto_commit=False, auto_offset_reset="earliest",
                                    max_partition_fetch_bytes=MAX_PARTITION_FETCH_BYTES)
        await consumer.start()
        self._consumer = consumer
        partitions = await topic_partitions(self.settings.kafka_bootstrap, list(self.topics))
        tps = [TopicPartition(t, p) for t in self.topics for p in partitions.get(t, ())]
        consumer.assign(tps)
        stored = await self.store.run(self.store.offsets)
        for tp in tps:
            if (tp.topic, tp.partition) in stored:
                consumer.seek(tp, stored[(tp.topic, tp.partition)])
            else:
                await consumer.seek_to_beginning(tp)
        self._ends = await consumer.end_offsets(tps)
        self._task = asyncio.create_task(self._run(), name="api-store-materializer")

    async def _run(self) -> None:
        assert self._consumer is not None
        while True:
            batches = await self._consumer.getmany(timeout_ms=POLL_MS, max_records=MAX_RECORDS)
            records = [(r.topic, r.partition, r.offset, r.value) for recs in batches.values() for r in recs]
            if records:
                try:
                    self.applied += await self.store.run(self.store.apply, self.topics, records)
                except Exception:  # noqa: BLE001 - log, re-read from the stored offsets, go on
                    log.exception("could not apply %d records to the API store", len(records))
                    for tp in {TopicPartition(t, p) for t, p, _, _ in records}:
                        stored = (await self.store.run(self.store.offsets)).get((tp.topic, tp.partition))
                        if stored is not None:
                            self._consumer.seek(tp, stored)
                    await asyncio.sleep(RETRY_AFTER_FAILURE_S)
                    continue
            if not self.caught_up.is_set():
                positions = {tp: await self._consumer.position(tp) for tp in self._ends}
                if all(positions[tp] >= end for tp, end in self._ends.items()):
                    self.caught_up.set()

    async def stop(self) -> None:
        await stop_reader(self._task, self._consumer)
