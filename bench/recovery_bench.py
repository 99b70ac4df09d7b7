"""Restart time: how long a worker restarted after SIGKILL takes to process again, and what it
waits for.

    python bench/recovery_bench.py [--events 20000]

Produces a backlog, runs a worker until it has committed part of it, SIGKILLs it, produces more,
starts a new worker and times from its spawn to its first commit beyond the old one. The log
of the new worker (INFO) shows the phases: process start-up, group join (the dead member is
evicted after REPLAYLENS_KAFKA_SESSION_TIMEOUT_MS), state topic read. Ends with
`RESULT restart_s=...`; the target is < 15 s.
"""
from __future__ import annotations

import argparse
import asyncio
import re
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from aiokafka.admin import AIOKafkaAdminClient  # noqa: E402

from bench.kafka_bench import committed_total, end_offsets, recent_events  # noqa: E402
from tests import kafka_support  # noqa: E402
from tests.worker_process import WorkerProcess, create_topics, pipeline_env, produce, topic  # noqa: E402


async def committed(admin: AIOKafkaAdminClient, env: dict, tps: list) -> int:
    return await committed_total(admin, f"{env['REPLAYLENS_APP_ID']}-sessionize", tps)


async def main(args: argparse.Namespace) -> None:
    bootstrap = kafka_support.ensure_broker()
    messages, _s, _h = recent_events(args.events, 5)
    half = len(messages) // 2
    with tempfile.TemporaryDirectory() as tmp:
        env = pipeline_env(bootstrap, Path(tmp), prefix=f"rec{uuid.uuid4().hex[:6]}", REPLAYLENS_LOG_LEVEL="INFO",
                           REPLAYLENS_SESSION_GRACE_MS=5000)
        await create_topics(env)
        tps = list(await end_offsets(bootstrap, topic(env, "events"), 4))
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
        await admin.start()
        try:
            await produce(bootstrap, topic(env, "events"), messages[:half])
            first = WorkerProcess(env, Path(tmp) / "first.log").start()
            while await committed(admin, env, tps) < half:
                first.assert_alive()
                await asyncio.sleep(0.1)
            first.kill()
            before = await committed(admin, env, tps)
            await produce(bootstrap, topic(env, "events"), messages[half:])
            spawned = time.monotonic()
            second = WorkerProcess(env, Path(tmp) / "second.log").start()
            try:
                while await committed(admin, env, tps) <= before:
                    second.assert_alive()
                    await asyncio.sleep(0.05)
                restart_s = time.monotonic() - spawned
                log = (Path(tmp) / "second.log").read_text(errors="replace")
            finally:
                second.stop()
        finally:
            await admin.close()
    stamps = {}
    for label, pattern in (("worker starting", r"\[\^Worker\]: Starting"),
                           ("sessionize group joined", r"Joined group '[^']*-sessionize'"),
                           ("state read", r"resumed \d+ open session ids")):
        m = re.search(r"^\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3})\][^\n]*" + pattern, log, re.MULTILINE)
        stamps[label] = m.group(1) if m else "?"
    print(f"restarted worker processing again {restart_s:.1f} s after spawn (target < 15 s); "
          f"session timeout {env.get('REPLAYLENS_KAFKA_SESSION_TIMEOUT_MS', 'default 10000')} ms")
    for label, at in stamps.items():
        print(f"  {label:<26} {at}")
    print(f"RESULT restart_s={restart_s:.1f}")


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=20_000)
    asyncio.run(main(ap.parse_args()))
