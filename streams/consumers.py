"""Helpers for the background readers that run their own aiokafka consumer in a task (the
url-delta materializer, the profiles feed, the API's materializer)."""
from __future__ import annotations

import asyncio
from typing import Optional

from aiokafka import AIOKafkaConsumer


async def stop_reader(task: Optional[asyncio.Task], consumer: Optional[AIOKafkaConsumer]) -> None:
    """Cancel the reading task, wait until it has unwound, then stop its consumer."""
    if task is not None:
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            pass
    if consumer is not None:
        await consumer.stop()
