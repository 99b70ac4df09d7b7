"""The per-event ingest path (decode + validate + mask + sessionizer add), without closing, in
CPU time on one core, against a baseline loop that only JSON-decodes the same messages.

    python bench/ingest_bench.py [--sessions 5000]

Prints the best of three runs (CPU time, so other work on the machine counts less), the decoder
alone by what each event needs (nothing to mask: original bytes kept; strings swapped on the
bytes; the decoded-dict path), and a floor: msgspec's decode plus the least bookkeeping a
sessionizer needs, which no pure-Python ingest can beat. Closing sessions is measured by
bench/embedded_bench.py (stage = this path + closing).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import orjson  # noqa: E402

from replaylens.config.settings import Settings  # noqa: E402
from replaylens.streams import scan  # noqa: E402
from replaylens.streams.ingest import _fast_decoder  # noqa: E402
from replaylens.streams.simulator import simulate_bytes  # noqa: E402
from replaylens.streams.stage import Origin, SessionStage, now_ms, tune_gc  # noqa: E402

REPEATS = 3


def best_cpu_seconds(run) -> float:
    return min(run() for _ in range(REPEATS))


def baseline(msgs: list[bytes]) -> float:
    loads = orjson.loads
    t = time.process_time()
    for m in msgs:
        loads(m)
    return time.process_time() - t


def ingest(msgs: list[bytes]) -> float:
    """stage.process for every message on a fresh stage (cold privacy memos, as a new worker)."""
    stage = SessionStage.from_settings(Settings())
    origin, wall, process = Origin("bench", 0), now_ms(), stage.process
    t = time.process_time()
    for m in msgs:
        process(0, m, origin, wall)
    return time.process_time() - t


def floor(msgs: list[bytes]) -> float:
    """msgspec decode, the text kept, and dict/set/list bookkeeping per session: no checks."""
    decode, keys, dirty, recent = _fast_decoder.decode, {}, set(), {}
    t = time.process_time()
    for m in msgs:
        ev = decode(m)
        sid = ev.session_id
        held = keys.get(sid)
        if held is None:
            held = keys[sid] = ([], set())
        held[0].append((ev.timestamp, 0, ev.event_id, ev.type, m.decode()))
        held[1].add(ev.event_id)
        recent[sid] = ev.timestamp
        dirty.add(sid)
    return time.process_time() - t


def decoder_by_path(msgs: list[bytes]) -> dict[str, tuple[int, float]]:
    """Per-event decode time of the messages taking each path (warm memos)."""
    decoder, wall = SessionStage.from_settings(Settings()).decoder, now_ms()
    paths: dict[str, list[bytes]] = {"kept": [], "swapped": [], "dict": []}
    for m in msgs:
        swaps = decoder.masker.masking_swaps(_fast_decoder.decode(m))
        path = ("kept" if swaps == [] else "swapped" if swaps and decoder._masked_in_place(m, swaps) is not None
                else "dict")
        paths[path].append(m)

    def timed(group: list[bytes]) -> float:
        t = time.process_time()
        for m in group:
            decoder.decode(m, wall)
        return time.process_time() - t

    return {name: (len(group), best_cpu_seconds(lambda g=group: timed(g)) / max(len(group), 1))
            for name, group in paths.items()}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sessions", type=int, default=5000)
    args = ap.parse_args()
    tune_gc()
    msgs = [v for _k, v in simulate_bytes(args.sessions, seed=11)]
    n = len(msgs)
    base, path, low = (best_cpu_seconds(lambda f=f: f(msgs)) for f in (baseline, ingest, floor))
    print(f"{n:,} simulated events from {args.sessions:,} sessions; CPU time, best of {REPEATS}; byte scans "
          + ("compiled (streams/_scan.c)" if scan.COMPILED else "in Python (streams/_scan.c not built)"))
    print(f"baseline  orjson.loads only             {n / base:>10,.0f} events/s  {base / n * 1e6:6.2f} us/event")
    print(f"ingest    decode+mask+sessionizer add   {n / path:>10,.0f} events/s  {path / n * 1e6:6.2f} us/event"
          f"   ratio to baseline {base / path:.3f}")
    print(f"floor     msgspec + minimal bookkeeping {n / low:>10,.0f} events/s  {low / n * 1e6:6.2f} us/event")
    for name, (count, seconds) in decoder_by_path(msgs).items():
        print(f"decoder   {name:8s} {count / n:6.1%} of events  {seconds * 1e6:6.2f} us/event")
    print(f"RESULT ingest_eps={n / path:.0f} ingest_ratio={base / path:.3f} ingest_floor_eps={n / low:.0f} "
          f"decode_only_eps={n / base:.0f} ingest_compiled_scans={int(scan.COMPILED)}")


if __name__ == "__main__":
    main()
