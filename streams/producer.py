"""Produce (key, value) byte pairs to a topic with aiokafka, batched by the client."""
from __future__ import annotations

from typing import Iterable, Optional

from aiokafka import AIOKafkaProducer


async def produce_pairs(bootstrap: str, topic: str, pairs: Iterable[tuple[Optional[bytes], bytes]],
                        linger_ms: int = 20) -> int:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=linger_ms,
                                max_batch_size=256 * 1024, compression_type=None, acks="all")
    await producer.start()
    sent = 0
    try:
        pending = []
        for key, value in pairs:
            pending.append(await producer.send(topic, value=value, key=key))
            sent += 1
            if len(pending) >= 5000:
                for fut in pending:
                    await fut
                pending.clear()
        for fut in pending:
            await fut
    finally:
        await producer.stop()
    return sent
