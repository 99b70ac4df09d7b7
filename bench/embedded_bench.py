"""Embedded runner speed and memory, each against a baseline measured in the same run.

    python bench/embedded_bench.py [--sessions 10000] [--scale-pipeline-events 100000]
                                   [--no-scale] [--scale-sizes 10000,100000,1000000]

Prints:
- sessionizing stage (decode + validate + mask + sessionize + close) events/s on one core, and
  its ratio to a baseline loop that only JSON-decodes the same messages;
- the whole embedded pipeline (with DuckDB aggregates and built-in summaries) events/s;
- memory per buffered event (tracemalloc) with every session held open;
- the scale run: the stage (and the pipeline up to `--scale-pipeline-events`) over 10 thousand,
  100 thousand and 1 million simulated events, each size in a fresh process (so peaks do not
  mix), generated lazily (the simulator's sessions close as its time passes, so open sessions
  stay bounded): events/s of CPU time (process_time: the machine is shared; making the
  messages not counted), peak RSS and open sessions at the end. `scale_flatness` is the
  stage's events/s at the largest size over the smallest; `rss_growth` the largest size's peak
  RSS over the smallest's (flat when memory follows open sessions, not total events).
"""
from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import subprocess
import sys
import tempfile
import time
import tracemalloc
from itertools import islice
from pathlib import Path
from typing import Any, Iterable, Iterator

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import orjson  # noqa: E402

from replaylens.config.settings import Settings  # noqa: E402
from replaylens.streams.simulator import simulate_bytes  # noqa: E402
from replaylens.streams.embedded import CLOSE_EVERY  # noqa: E402
from replaylens.streams.stage import Origin, SessionStage, now_ms, tune_gc  # noqa: E402

SEED = 11
# The simulator's mean events per session (measured: 18.7): turns an event count into sessions.
EVENTS_PER_SESSION = 18.7
SCALE_SIZES = (10_000, 100_000, 1_000_000)
# The pipeline's scale run stops at this size by default (1M events take minutes with summaries).
SCALE_PIPELINE_EVENTS = 100_000
# A small size is over in a fraction of a second: the best of this many runs of it is kept.
SMALL_SIZE = 50_000
SMALL_REPEATS = 3


def messages(sessions: int) -> list[bytes]:
    return [v for _k, v in simulate_bytes(sessions, seed=SEED)]


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


def _pipeline_settings(d: str) -> Settings:
    return Settings(data_dir=Path(d), duckdb_path=Path(d) / "a.duckdb", summaries_path=Path(d) / "s.ndjson")


def bench_pipeline(msgs: list[bytes]) -> tuple[float, float]:
    """Events/s of the embedded pipeline: wall time (as a user sees it), and CPU time of this
    process (steadier on a shared machine; DuckDB's threads count too)."""
    from replaylens.streams.embedded import EmbeddedPipeline

    with tempfile.TemporaryDirectory() as d:
        cpu = time.process_time()
        report = asyncio.run(EmbeddedPipeline(_pipeline_settings(d), examples=0).run(iter(msgs), progress=False))
        return report.events_per_s, report.events / (time.process_time() - cpu)


# -- the scale run: one size in a fresh process ------------------------------------------------
def _status_mb(field: str) -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field):
                return int(line.split()[1]) / 1024
    return 0.0


def _rss_mb() -> float:
    return _status_mb("VmRSS:")


def _peak_rss_mb() -> float:
    """This process's peak RSS. Not getrusage's ru_maxrss: Linux keeps it across execve, so a
    child would report its parent's peak (the parent holds the main run's messages)."""
    return _status_mb("VmHWM:")


def _lazy_messages(events: int) -> Iterator[bytes]:
    """About `events` simulated messages, made as they are consumed (never all in memory)."""
    sessions = max(1, round(events / EVENTS_PER_SESSION))
    return (v for _k, v in simulate_bytes(sessions, seed=SEED))


class _Timed:
    """An iterator that keeps the time spent making its items, so it can be left out."""

    def __init__(self, items: Iterable[bytes]) -> None:
        self.items, self.seconds, self.count = iter(items), 0.0, 0

    def __iter__(self) -> "_Timed":
        return self

    def __next__(self) -> bytes:
        t = time.process_time()
        try:
            item = next(self.items)
        finally:
            self.seconds += time.process_time() - t
        self.count += 1
        return item


def scale_stage(events: int) -> dict[str, Any]:
    """The stage over `events` lazily simulated events: chunks of CLOSE_EVERY are made, then timed."""
    stage = SessionStage.from_settings(Settings())
    origin, wall = Origin("bench", 0), now_ms()
    process = stage.process
    source = _lazy_messages(events)
    rss_start, seconds, count, most_open = _rss_mb(), 0.0, 0, 0
    while chunk := list(islice(source, CLOSE_EVERY)):
        t = time.process_time()
        for m in chunk:
            process(0, m, origin, wall)
        stage.flush([0], wall, with_state=False)
        seconds += time.process_time() - t
        count += len(chunk)
        most_open = max(most_open, stage.open_sessions())
    open_at_end = stage.open_sessions()
    t = time.process_time()
    stage.flush([0], close_all=True, with_state=False)
    seconds += time.process_time() - t
    return {"events": count, "eps": count / seconds, "open_at_end": open_at_end, "most_open": most_open,
            "closed": stage.counters.sessions_closed, "rss_start_mb": rss_start}


def scale_pipeline(events: int) -> dict[str, Any]:
    """The embedded pipeline over `events` lazily simulated events (their making not timed)."""
    from replaylens.streams.embedded import EmbeddedPipeline

    with tempfile.TemporaryDirectory() as d:
        pipeline = EmbeddedPipeline(_pipeline_settings(d), examples=0)
        rss_start = _rss_mb()
        source = _Timed(_lazy_messages(events))
        seen: dict[str, int] = {}

        def counted() -> Iterator[bytes]:
            for m in source:
                yield m
            seen["open_at_end"] = pipeline.core.stage.open_sessions()

        t = time.process_time()
        report = asyncio.run(pipeline.run(counted(), progress=False))
        seconds = time.process_time() - t - source.seconds
        duckdb_mb = (Path(d) / "a.duckdb").stat().st_size / 2**20
    return {"events": report.events, "eps": report.events / seconds, "open_at_end": seen.get("open_at_end", 0),
            "closed": report.counters.get("sessions_closed", 0), "summaries": report.summaries,
            "rss_start_mb": rss_start, "duckdb_file_mb": duckdb_mb}


def scale_child(what: str, events: int) -> None:
    tune_gc()
    repeats = SMALL_REPEATS if events <= SMALL_SIZE else 1
    runs = [(scale_stage if what == "stage" else scale_pipeline)(events) for _ in range(repeats)]
    best = max(runs, key=lambda r: r["eps"])
    print(json.dumps(best | {"peak_rss_mb": _peak_rss_mb()}))


def run_scale_size(what: str, events: int) -> dict[str, Any]:
    out = subprocess.run([sys.executable, __file__, "--scale-child", what, str(events)],
                         check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def scale_run(what: str, sizes: list[int]) -> list[dict[str, Any]]:
    results = []
    for size in sizes:
        r = run_scale_size(what, size)
        results.append(r)
        extra = (f"  duckdb file {r['duckdb_file_mb']:6.1f} MB" if "duckdb_file_mb" in r else "")
        print(f"scale     {what:<8} {r['events']:>9,} events {r['eps']:>9,.0f} events/s   peak RSS "
              f"{r['peak_rss_mb']:6.0f} MB (at start {r['rss_start_mb']:4.0f})   open sessions at end "
              f"{r['open_at_end']:>5,}{extra}")
    return results


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sessions", type=int, default=10000)
    ap.add_argument("--no-scale", action="store_true", help="skip the scale run")
    ap.add_argument("--scale-sizes", default=",".join(str(s) for s in SCALE_SIZES),
                    help="simulated events per scale-run size, comma separated")
    ap.add_argument("--scale-pipeline-events", type=int, default=SCALE_PIPELINE_EVENTS,
                    help="largest size the pipeline's scale run goes to (1000000 takes minutes)")
    ap.add_argument("--scale-child", nargs=2, metavar=("WHAT", "EVENTS"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.scale_child:
        scale_child(args.scale_child[0], int(args.scale_child[1]))
        return
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
    pipe, pipe_cpu = bench_pipeline(msgs)
    print(f"pipeline  embedded, with summaries   {pipe:>12,.0f} events/s   ratio to baseline {pipe / base:.2f}"
          f"   per CPU-second {pipe_cpu:,.0f} ({1e6 / pipe_cpu:.1f} us per event)")
    result = (f"RESULT embedded_stage_eps={stage:.0f} embedded_pipeline_eps={pipe:.0f} bytes_per_event={per_event:.0f} "
              f"decode_only_eps={base:.0f} embedded_pipeline_cpu_eps={pipe_cpu:.0f}")
    del msgs
    if not args.no_scale:
        sizes = sorted(int(s) for s in args.scale_sizes.split(","))
        stages = scale_run("stage", sizes)
        pipes = scale_run("pipeline", [s for s in sizes if s <= args.scale_pipeline_events])
        first, last = stages[0], stages[-1]
        result += (f" scale_flatness={last['eps'] / first['eps']:.2f}"
                   f" rss_growth={last['peak_rss_mb'] / first['peak_rss_mb']:.2f}"
                   f" peak_rss_mb={last['peak_rss_mb']:.0f} scale_events={last['events']}"
                   f" open_sessions_at_end={last['open_at_end']}")
        if len(pipes) >= 2:
            result += (f" pipeline_scale_flatness={pipes[-1]['eps'] / pipes[0]['eps']:.2f}"
                       f" pipeline_rss_growth={pipes[-1]['peak_rss_mb'] / pipes[0]['peak_rss_mb']:.2f}"
                       f" pipeline_peak_rss_mb={pipes[-1]['peak_rss_mb']:.0f}"
                       f" pipeline_scale_events={pipes[-1]['events']}")
    print(result)


if __name__ == "__main__":
    main()
