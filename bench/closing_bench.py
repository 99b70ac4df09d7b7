"""Closing sessions: CPU time per event of building closed sessions in the sessionizing stage,
against a baseline measured in the same run (decoding the same events once, orjson).

    python bench/closing_bench.py [--sessions 5000] [--profile]

Runs the stage as bench/embedded_bench.py does (simulated events, a flush every CLOSE_EVERY
messages, everything closed at the end), best of 3 in CPU time (process_time; the machine is
shared), and splits it: the whole stage per event, and building the closed sessions
(`SessionStage._built`: one decode of each window's events for the closed session's `events`,
then signals, pages, context and automation detected over them) per event. A change that moves
work out of closing into the add path (e.g. detection folded per event) shows its net in the stage
figure. `--profile` prints cProfile's top entries of building every closed session of one run.
"""
from __future__ import annotations

import argparse
import cProfile
import pstats
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


from replaylens.config.settings import Settings  # noqa: E402
from replaylens.streams.embedded import CLOSE_EVERY  # noqa: E402
from replaylens.streams.simulator import simulate_bytes  # noqa: E402
from replaylens.streams.stage import Origin, SessionStage, now_ms, tune_gc  # noqa: E402

from bench.ingest_bench import baseline as decode_only  # noqa: E402  (CPU seconds of orjson.loads per message)

SEED = 11
REPEATS = 3


def stage_run(msgs: list[bytes]) -> tuple[float, float, int]:
    """(stage CPU seconds, of which building closed sessions, sessions closed)."""
    stage = SessionStage.from_settings(Settings())
    origin, wall = Origin("bench", 0), now_ms()
    building = [0.0]
    build = stage._built

    def timed(closed):  # type: ignore[no-untyped-def]
        t = time.process_time()
        out = build(closed)
        building[0] += time.process_time() - t
        return out

    stage._built = timed  # type: ignore[method-assign]
    process = stage.process
    t = time.process_time()
    for i, m in enumerate(msgs):
        process(0, m, origin, wall)
        if i % CLOSE_EVERY == CLOSE_EVERY - 1:
            stage.flush([0], wall, with_state=False)
    stage.flush([0], close_all=True, with_state=False)
    return time.process_time() - t, building[0], stage.counters.sessions_closed


def profile_closing(msgs: list[bytes], top: int = 15) -> None:
    stage = SessionStage.from_settings(Settings())
    origin, wall = Origin("bench", 0), now_ms()
    for m in msgs:
        stage.process(0, m, origin, wall)
    closed = stage.partitions[0].close_all()
    profiler = cProfile.Profile()
    profiler.enable()
    stage._built(closed)
    profiler.disable()
    pstats.Stats(profiler).sort_stats("tottime").print_stats(top)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sessions", type=int, default=5000)
    ap.add_argument("--profile", action="store_true", help="print the cProfile of closing every session")
    args = ap.parse_args()
    tune_gc()
    msgs = [v for _k, v in simulate_bytes(args.sessions, seed=SEED)]
    n = len(msgs)
    base = min(decode_only(msgs) for _ in range(REPEATS))
    runs = [stage_run(msgs) for _ in range(REPEATS)]
    stage_s = min(r[0] for r in runs)
    closing_s = min(r[1] for r in runs)
    us = 1e6 / n
    print(f"{n:,} simulated events, {runs[0][2]:,} sessions closed; best of {REPEATS}, CPU time")
    print(f"baseline  orjson.loads of each event   {base * us:6.2f} us/event")
    print(f"stage     decode+sessionize+close      {stage_s * us:6.2f} us/event   ratio to baseline {stage_s / base:.1f}")
    print(f"closing   building closed sessions     {closing_s * us:6.2f} us/event   ratio to baseline {closing_s / base:.2f}")
    print(f"RESULT closing_us_per_event={closing_s * us:.2f} stage_us_per_event={stage_s * us:.2f} "
          f"decode_us_per_event={base * us:.2f} closing_ratio={closing_s / base:.2f}")
    if args.profile:
        profile_closing(msgs)


if __name__ == "__main__":
    main()
