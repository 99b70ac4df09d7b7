"""Profile a `replaylens worker` process over a backlog with py-spy (sampling, whole process).

    pip install -e '.[bench]'     # py-spy, once
    python bench/profile_worker.py [--events 100000] [--roles sessionize] [--seconds 12]

Produces the backlog, starts the worker, lets it join, then samples it with `py-spy record` and
prints the top functions by own time and by total time (the figures in BENCHMARKS.md).
"""
from __future__ import annotations

import argparse
import asyncio
import collections
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.kafka_bench import recent_events  # noqa: E402
from tests import kafka_support  # noqa: E402
from tests.worker_process import WorkerProcess, create_topics, pipeline_env, produce, topic  # noqa: E402


def closed_sessions(messages: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    import orjson

    from replaylens.config.settings import Settings
    from replaylens.streams.stage import Origin, SessionStage, now_ms

    stage = SessionStage.from_settings(Settings())
    for i, (_k, v) in enumerate(messages):
        stage.process(0, v, Origin("bench", 0, i), now_ms())
    closed = stage.flush([0], close_all=True, with_state=False).closed
    return [(c["session_id"].encode(), orjson.dumps(c)) for c in closed]


def top(raw: Path, n: int) -> None:
    own: collections.Counter = collections.Counter()
    total: collections.Counter = collections.Counter()
    samples = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        frames = stack.split(";")
        c = int(count)
        samples += c
        own[frames[-1]] += c
        for f in set(frames):
            total[f] += c
    print(f"{samples} samples")
    print("-- own time --")
    for f, c in own.most_common(n):
        print(f"{100 * c / samples:5.1f}%  {f}")
    print("-- total time (incl. callees) --")
    for f, c in total.most_common(n):
        print(f"{100 * c / samples:5.1f}%  {f}")


async def main(args: argparse.Namespace) -> None:
    bootstrap = kafka_support.ensure_broker()
    messages, _sessions, _hours = recent_events(args.events, 17)
    with tempfile.TemporaryDirectory() as tmp:
        env = pipeline_env(bootstrap, Path(tmp), prefix=f"prof{uuid.uuid4().hex[:6]}",
                           REPLAYLENS_SESSION_GRACE_MS=5000, REPLAYLENS_WORKER_ROLES=args.roles,
                           REPLAYLENS_BATCH_SIZE=args.batch)
        await create_topics(env)
        if args.roles == "summarize":  # its input: the closed sessions of those events
            await produce(bootstrap, topic(env, "closed_sessions"), closed_sessions(messages))
        else:
            await produce(bootstrap, topic(env, "events"), messages)
        worker = WorkerProcess(env, Path(tmp) / "worker.log").start()
        try:
            await asyncio.sleep(args.warmup)
            raw = Path(args.out)
            subprocess.run([str(Path(sys.executable).parent / "py-spy"), "record", "--pid", str(worker.proc.pid),
                            "--duration", str(args.seconds), "--format", "raw", "--output", str(raw),
                            "--rate", "200", "--nonblocking"] + (["--gil"] if args.gil else [])
                           + (["--idle"] if args.idle else []),
                           check=True, capture_output=True)
            top(raw, args.top)
        finally:
            worker.stop()


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=100_000)
    ap.add_argument("--roles", default="sessionize")
    ap.add_argument("--seconds", type=int, default=12)
    ap.add_argument("--warmup", type=float, default=5.0)
    ap.add_argument("--top", type=int, default=30)
    ap.add_argument("--batch", type=int, default=10000)
    ap.add_argument("--gil", action="store_true", help="only samples holding the GIL (CPU, not GIL waits)")
    ap.add_argument("--idle", action="store_true", help="also samples of idle threads (where the loop waits)")
    ap.add_argument("--out", default="/tmp/replaylens-worker-profile.txt")
    asyncio.run(main(ap.parse_args()))
