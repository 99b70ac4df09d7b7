"""The built-in summarizer, µs per closed session (issue 12: ≤ 150 µs, from 551).

Summarizes the closed sessions of a simulated run (the default profile) and compares with a
baseline measured in the same run: decoding the same closed sessions from JSON (orjson), the
floor any consumer of the closed-sessions topic pays per session.

    .venv/bin/python bench/builtin_bench.py [--sessions 2000] [--repeat 3] [--profile]
"""
from __future__ import annotations

import argparse
import asyncio
import cProfile
import pstats
import sys
import tempfile
import time
from pathlib import Path

import orjson

from replaylens.config.settings import Settings
from replaylens.schemas.profiles import DEFAULT_PROFILE
from replaylens.sinks.builtin import BuiltinSummarizer
from replaylens.streams.embedded import EmbeddedPipeline
from replaylens.streams.simulator import simulate_bytes


def closed_sessions(count: int, seed: int) -> list[bytes]:
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        settings = Settings(data_dir=d, duckdb_path=d / "b.duckdb", summaries_path=d / "s.ndjson")
        messages = (value for _key, value in simulate_bytes(count, seed=seed))
        asyncio.run(EmbeddedPipeline(settings, examples=0).run(messages, progress=False))
        return (d / "closed-sessions.ndjson").read_bytes().splitlines()


def per_session_us(work, lines: list[bytes], repeat: int) -> float:
    """CPU time of this process per session, best of `repeat`: on a shared machine the wall clock
    measures the neighbours too."""
    runs = []
    for _ in range(repeat):
        sessions = [orjson.loads(line) for line in lines]
        started = time.process_time()
        work(sessions)
        runs.append((time.process_time() - started) / len(lines) * 1e6)
    return min(runs)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sessions", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--profile", action="store_true", help="print cProfile's top entries")
    parser.add_argument("--sort", default="tottime", help="cProfile order: tottime or cumulative")
    parser.add_argument("--top", type=int, default=15)
    args = parser.parse_args()
    lines = closed_sessions(args.sessions, args.seed)
    summarizer = BuiltinSummarizer.from_settings(Settings())

    def summarize_all(sessions: list[dict]) -> None:
        for session in sessions:
            summarizer.summarize(session, DEFAULT_PROFILE, generated_at=0)

    def decode_all(sessions: list[dict]) -> None:
        for line in lines:
            orjson.loads(line)

    baseline = per_session_us(decode_all, lines, args.repeat)
    builtin = per_session_us(summarize_all, lines, args.repeat)
    if args.profile:
        sessions = [orjson.loads(line) for line in lines]
        profiler = cProfile.Profile()
        profiler.runcall(summarize_all, sessions)
        pstats.Stats(profiler, stream=sys.stdout).sort_stats(args.sort).print_stats(args.top)
    print(f"{len(lines)} closed sessions, best of {args.repeat} (CPU time): built-in summary {builtin:.1f} µs/session, "
          f"JSON decode of the same session {baseline:.1f} µs")
    print(f"RESULT builtin_us_per_session={builtin:.1f} decode_us_per_session={baseline:.1f} "
          f"ratio_to_decode={builtin / baseline:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
