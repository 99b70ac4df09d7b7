"""Produce (key, value) byte pairs to a topic with aiokafka, batched by the client (the CLI's
`simulate --kafka` and `ingest-rrweb --kafka`)."""
from __future__ import annotations

from typing import Iterable, Optional

from aiokafka import AIOKafkaProducer

# Wait up to 20 ms to fill a batch: a bulk load trades that latency for fewer, larger requests.
LINGER_MS = 20
# 256 KiB batches (aiokafka's default is 16 KiB): far fewer requests for a bulk load, and well
# under the broker's default 1 MiB message limit.
MAX_BATCH_BYTES = 256 * 1024
# Await the acknowledgements every 5,000 records: bounds the futures held in memory while the
# client keeps several batches in flight.
ACK_EVERY = 5_000


async def produce_pairs(bootstrap: str, topic: str, pairs: Iterable[tuple[Optional[bytes], bytes]],
                        linger_ms: int = LINGER_MS) -> int:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=linger_ms,
                                max_batch_size=MAX_BATCH_BYTES, compression_type=None, acks="all")
    await producer.start()
    sent = 0
    try:
        pending = []
        for key, value in pairs:
            pending.append(await producer.send(topic, value=value, key=key))
            sent += 1
            if len(pending) >= ACK_EVERY:
                for fut in pending:
                    await fut
                pending.clear()
        for fut in pending:
            await fut
    finally:
        await producer.stop()
    return sent
