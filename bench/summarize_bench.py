"""The summarizing role alone: closed sessions/s of a `replaylens worker` with
REPLAYLENS_WORKER_ROLES=summarize and the built-in summarizer (issue 12: >= 2,000 per process).

    .venv/bin/python bench/summarize_bench.py [--sessions 12000] [--repeat 3]

Starts a private Kafka broker (tests/kafka_support.ensure_broker) unless REPLAYLENS_TEST_BOOTSTRAP
names one. Loopback only. In one run, on the same broker and the same closed sessions:

1. baseline: a plain aiokafka loop over the closed-sessions topic with the worker's producer
   settings (streams/worker.py `build_producer`: batching, compression): consume, decode each
   session (what any consumer of the topic pays), produce it again, commit after the acks;
2. the summarize worker, `--repeat` times (each a fresh consumer group over the same backlog),
   the best and the worst of them: sessions/s (wall), sessions per CPU-second and CPU-µs per
   session of the worker process (every thread, user and system time), read off
   its committed offsets (bench/kafka_bench.py `run_worker`);
   The loop's own cost (reading, decoding, encoding, producing, committing, scheduling, and what
   else the worker process runs) is each run's CPU per session minus the built-in summarizer's,
   both measured inside the worker over the same run (status.json `summarizer_cpu_s`,
   streams/worker.py `SummarizerClock`): a summarizer timed in another process at another moment
   of a shared machine would mix two loads into the difference;
3. in this process, the built-in summarizer alone over the same sessions (CPU time, every
   streaming profile), as a cross-check of the worker's figure, and the rate the role would reach
   with a 150 µs summarizer (the "builtin" work's target) at the loop's cost.

The closed sessions come from the embedded pipeline over simulated sessions (so they carry
comparisons, as the sessionizing role publishes them), copied under new session ids to reach
`--sessions`, and are written to the topic as the sessionizing role writes them: by the worker's
producer (zstd batches of up to 256 KiB), so the consumer reads what it reads in production.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import orjson  # noqa: E402

from bench.builtin_bench import closed_sessions  # noqa: E402

from bench.kafka_bench import Rate, machine_lines, run_baseline, run_worker  # noqa: E402
from replaylens.config.settings import Settings  # noqa: E402
from replaylens.streams.wiring import build_core  # noqa: E402
from replaylens.streams.worker import build_producer  # noqa: E402
from tests import kafka_support  # noqa: E402
from tests.worker_process import WorkerProcess, create_topics, pipeline_env, topic  # noqa: E402

TARGET_SPS = 2_000
TARGET_SUMMARIZER_US = 150.0
US_PER_S = 1e6
STATUS_POLL_S = 0.1


def backlog(distinct: int, total: int, seed: int) -> list[tuple[bytes, bytes]]:
    """`total` closed sessions keyed by session id: `distinct` simulated ones, copied under new
    session and window ids."""
    lines = closed_sessions(distinct, seed)
    out = []
    for i in range(total):
        session = orjson.loads(lines[i % len(lines)])
        copy = i // len(lines)
        if copy:
            session["session_id"] = f"{session['session_id']}~{copy}"
            session["window_id"] = f"{session['window_id']}~{copy}"
        out.append((session["session_id"].encode(), orjson.dumps(session)))
    return out


def summarizer_us(records: list[tuple[bytes, bytes]], sample: int) -> float:
    """CPU µs per session of the built-in summarizer alone, every streaming profile, as the
    worker's settings make it (decoding not included)."""
    core = build_core(Settings(), with_store=False)
    sink = core.sink
    sessions = [orjson.loads(v) for _k, v in records[:sample]]
    started = time.process_time()
    for session in sessions:
        for profile in sink.profiles:
            sink.builtin.summarize(session, profile, generated_at=0)
    return (time.process_time() - started) / len(sessions) * US_PER_S


async def produce_as_the_worker(bootstrap: str, topic_name: str, records: list[tuple[bytes, bytes]]) -> None:
    """The backlog, batched and compressed by the worker's producer as the sessionizing role's
    closed sessions are (a plain producer's 16 KiB uncompressed batches hold one session each)."""
    producer = build_producer(Settings(kafka_bootstrap=bootstrap))
    await producer.start()
    try:
        await asyncio.gather(*[await producer.send(topic_name, value=v, key=k) for k, v in records])
    finally:
        await producer.stop()


async def final_status(path: Path, sessions: int, timeout_s: float) -> dict:
    """The worker's status.json once it counts every session summarized (it is written every tick)."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            status = orjson.loads(path.read_bytes())
            if (status.get("sessions_summarized") or 0) >= sessions:
                return status
        except (OSError, orjson.JSONDecodeError):
            pass  # not written yet (or replaced under us)
        if time.monotonic() > deadline:
            raise TimeoutError(f"{path} never counted {sessions} sessions summarized")
        await asyncio.sleep(STATUS_POLL_S)


async def bench(args: argparse.Namespace, records: list[tuple[bytes, bytes]]) -> None:
    external = bool(os.environ.get("REPLAYLENS_TEST_BOOTSTRAP", "").strip())
    bootstrap = kafka_support.ensure_broker()
    for line in machine_lines(bootstrap, external):
        print(line)
    size = sum(len(v) for _k, v in records) / len(records)
    print(f"backlog   {len(records):,} closed sessions ({args.distinct:,} simulated, copied), "
          f"{size:,.0f} bytes each, {args.partitions} partitions")
    with tempfile.TemporaryDirectory(prefix="replaylens-summarize-bench-") as tmp:
        work = Path(tmp)
        prefix = f"sbench{uuid.uuid4().hex[:6]}"
        env = pipeline_env(bootstrap, work, prefix=prefix, REPLAYLENS_TOPIC_PARTITIONS=args.partitions,
                           REPLAYLENS_WORKER_ROLES="summarize")
        await create_topics(env)
        source = topic(env, "closed_sessions")
        await produce_as_the_worker(bootstrap, source, records)
        sink = f"{prefix}-baseline-out"
        await kafka_support.create_topics(bootstrap, [sink], partitions=args.partitions)

        base = await run_baseline(bootstrap, source, sink, len(records), args.batch, args.timeout,
                                  build_producer(Settings(kafka_bootstrap=bootstrap)), orjson.loads)
        print(f"\n1. baseline  aiokafka consume->decode->produce->commit  {base.per_s:>8,.0f} sessions/s, "
              f"{base.per_cpu_s:,.0f} per CPU-second")

        runs: list[Rate] = []
        loops: list[float] = []
        inside: list[float] = []
        for i in range(args.repeat):
            renv = dict(env, REPLAYLENS_APP_ID=f"{prefix}-app{i}")
            worker = WorkerProcess(renv, work / f"worker{i}.log")
            try:
                run = await run_worker(renv, bootstrap, args.partitions, worker, args.timeout, role="summarize")
                status = await final_status(work / "status.json", len(records), args.timeout)
            finally:
                worker.stop()
            rate = run.mid_slope or run.steady
            cpu_us = US_PER_S / rate.per_cpu_s
            summarizer = status["summarizer_cpu_s"] / status["sessions_summarized"] * US_PER_S
            runs.append(rate)
            inside.append(summarizer)
            loops.append(cpu_us - summarizer)
            print(f"2. worker run {i + 1}: {rate.per_s:>8,.0f} sessions/s, {rate.per_cpu_s:,.0f} per CPU-second, "
                  f"{cpu_us:.0f} CPU-µs per session = summarizer {summarizer:.0f} + loop {cpu_us - summarizer:.0f} "
                  f"({rate.events:,} sessions in {rate.seconds:.2f} s, {rate.cpu_s:.2f} CPU-s)")
    best = max(runs, key=lambda r: r.per_s)
    worst = min(runs, key=lambda r: r.per_s)
    best_cpu = max(r.per_cpu_s for r in runs)
    builtin = min(summarizer_us(records, args.sample) for _ in range(args.repeat))
    loop_us = min(loops)
    projected = US_PER_S / (loop_us + TARGET_SUMMARIZER_US)
    print(f"\n   sessions/s: worst {worst.per_s:,.0f}, best {best.per_s:,.0f} (target >= {TARGET_SPS:,} in every run), "
          f"best's ratio to the baseline {best.per_s / base.per_s:.3f}; best {best_cpu:,.0f} per CPU-second, "
          f"ratio {best_cpu / base.per_cpu_s:.3f}")
    print(f"   loop's own cost per session: {', '.join(f'{x:.0f}' for x in loops)} µs "
          f"(the worker's CPU less its summarizer's, each run)")
    print(f"3. in-process built-in summarizer {builtin:.0f} µs/session (best of {args.repeat}, {args.sample:,} "
          f"sessions; inside the worker: {', '.join(f'{x:.0f}' for x in inside)} µs)")
    print(f"   with a {TARGET_SUMMARIZER_US:.0f} µs summarizer and the lowest loop cost: {projected:,.0f} sessions per CPU-second")
    print(f"RESULT summarize_sps={best.per_s:.0f} summarize_sps_worst={worst.per_s:.0f} summarize_per_cpu_s={best_cpu:.0f} "
          f"summarize_ratio={best.per_s / base.per_s:.3f} summarize_cpu_ratio={best_cpu / base.per_cpu_s:.3f} "
          f"builtin_us={builtin:.0f} worker_builtin_us={min(inside):.0f} loop_us={loop_us:.0f} "
          f"loop_us_worst={max(loops):.0f} projected_sps_at_150us={projected:.0f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sessions", type=int, default=12_000, help="closed sessions in the backlog")
    ap.add_argument("--distinct", type=int, default=2_000, help="simulated sessions the backlog copies")
    ap.add_argument("--partitions", type=int, default=4)
    ap.add_argument("--batch", type=int, default=500, help="getmany max_records of the baseline")
    ap.add_argument("--repeat", type=int, default=3, help="worker runs (best is reported)")
    ap.add_argument("--sample", type=int, default=2_000, help="sessions timed in-process")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--timeout", type=float, default=120)
    args = ap.parse_args()
    records = backlog(args.distinct, args.sessions, args.seed)  # runs its own event loop
    asyncio.run(bench(args, records))


if __name__ == "__main__":
    main()
