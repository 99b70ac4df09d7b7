"""Embedded runner speed and memory, each against a baseline measured in the same run.

    python bench/embedded_bench.py [--sessions 20000]

Prints:
- sessionizing stage (decode + validate + mask + sessionize + close) events/s on one core, and
  its ratio to a baseline loop that only JSON-decodes the same messages;
- the whole embedded pipeline (with DuckDB aggregates and built-in summaries) events/s;
- memory per buffered event (tracemalloc) with every session held open.
"""
from __future__ import annotations

import argparse
import asyncio
import gc
import os
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import orjson  # noqa: E402

from replaylens.config.settings import Settings  # noqa: E402
from replaylens.streams.simulator import simulate_bytes  # noqa: E402
from replaylens.streams.embedded import CLOSE_EVERY  # noqa: E402
from replaylens.streams.stage import Origin, SessionStage, now_ms, tune_gc  # noqa: E402


def messages(sessions: int) -> list[bytes]:
    return [v for _k, v in simulate_bytes(sessions, seed=11)]


def bench_decode_only(msgs: list[bytes]) -> float:
    loads = orjson.loads
    t = time.perf_counter()
    for m in msgs:
        loads(m)
    return len(msgs) / (time.perf_counter() - t)


def bench_stage(msgs: list[bytes]) -> tuple[float, int]:
    stage = SessionStage.from_settings(Settings())
    origin, wall = Origin("bench", 0), now_ms()
    process = stage.process
    t = time.perf_counter()
    for i, m in enumerate(msgs):
        process(0, m, origin, wall)
        if i % CLOSE_EVERY == CLOSE_EVERY - 1:
            stage.flush([0], wall, with_state=False)
    stage.flush([0], close_all=True, with_state=False)
    return len(msgs) / (time.perf_counter() - t), stage.counters.sessions_closed


def bench_memory(msgs: list[bytes]) -> float:
    stage = SessionStage.from_settings(Settings(session_gap_ms=10**12))
    origin, wall = Origin("bench", 0), now_ms()
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    for m in msgs:
        stage.process(0, m, origin, wall)
    gc.collect()
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    held = stage.buffered_events()
    return (after - before) / max(held, 1)


def bench_pipeline(msgs: list[bytes]) -> float:
    from replaylens.streams.embedded import EmbeddedPipeline

    with tempfile.TemporaryDirectory() as d:
        s = Settings(data_dir=Path(d), duckdb_path=Path(d) / "a.duckdb", summaries_path=Path(d) / "s.ndjson")
        report = asyncio.run(EmbeddedPipeline(s, examples=0).run(iter(msgs), progress=False))
        return report.events_per_s


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sessions", type=int, default=20000)
    args = ap.parse_args()
    tune_gc()  # as `replaylens run` and `replaylens worker` do
    msgs = messages(args.sessions)
    print(f"{len(msgs):,} simulated events from {args.sessions:,} sessions; python {sys.version.split()[0]}, "
          f"{os.cpu_count()} cpus")
    base = bench_decode_only(msgs)
    stage, _ = bench_stage(msgs)
    print(f"baseline  orjson.loads only          {base:>12,.0f} events/s")
    print(f"stage     decode+validate+sessionize {stage:>12,.0f} events/s   ratio to baseline {stage / base:.2f}")
    per_event = bench_memory(msgs)
    print(f"memory    per buffered event         {per_event:>12,.0f} bytes  (target < 1024)")
    pipe = bench_pipeline(msgs)
    print(f"pipeline  embedded, with summaries   {pipe:>12,.0f} events/s   ratio to baseline {pipe / base:.2f}")
    print(f"RESULT embedded_stage_eps={stage:.0f} embedded_pipeline_eps={pipe:.0f} bytes_per_event={per_event:.0f} "
          f"decode_only_eps={base:.0f}")


if __name__ == "__main__":
    main()
