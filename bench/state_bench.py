"""Open-session state written per input byte under a real-time trickle (issue 12), against the
design it replaced (the whole state of a session rewritten on every batch that touches it),
measured in the same run.

    python bench/state_bench.py [--sessions 300] [--seconds 600] [--body 300]

Each simulated second, a quarter of the sessions send one event (events seconds apart); one batch
per second; what a worker would write to the state topic is counted (keys and values).

Prints `RESULT state_amplification=<pieces bytes / input bytes> baseline_amplification=<whole
state bytes / input bytes> ratio=<baseline / pieces>`.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import orjson  # noqa: E402

from replaylens.config.settings import Settings  # noqa: E402
from replaylens.streams.ingest import EventDecoder  # noqa: E402
from replaylens.streams.sessionizer import SessionRules, Sessionizer  # noqa: E402

START_MS = 1_763_900_000_000
SENDERS_PER_SECOND = 4  # one session in this many sends each second


def event(sid: str, i: int, ts: int, body: int) -> bytes:
    ev = {"session_id": sid, "event_id": f"{sid}-{i}", "timestamp": ts, "type": "click",
          "url": "https://shop.example.com/p/1", "target": {"selector": "button#buy", "text": "Buy"}}
    pad = max(0, body - len(orjson.dumps(ev)) - 24)
    return orjson.dumps({**ev, "properties": {"pad": "x" * pad}})


def run(sessions: int, seconds: int, body: int) -> tuple[int, int, int]:
    s = Settings()
    dec = EventDecoder(max_event_bytes=s.max_event_bytes)
    pieces, whole = Sessionizer(SessionRules.from_settings(s)), Sessionizer(SessionRules.from_settings(s))
    input_bytes = pieces_bytes = whole_bytes = 0
    now = START_MS + seconds * 1000
    for second in range(seconds):
        for k in range(sessions):
            if (k + second) % SENDERS_PER_SECOND == 0:
                sid = f"user-{k}:s"
                raw = event(sid, second, START_MS + second * 1000, body)
                input_bytes += len(sid) + len(raw)
                pieces.add(dec.decode(raw, now))
                whole.add(dec.decode(raw, now))
        pieces.take_closed()
        whole.take_closed()
        for sid in pieces.drain_dirty():
            pieces_bytes += sum(len(k) + len(v or b"") for k, v in pieces.export_records(sid, s.state_piece_max_bytes))
        for sid in whole.drain_dirty():
            state = whole.export_key(sid)
            whole_bytes += len(sid) + (len(orjson.dumps(state)) if state else 0)
    return input_bytes, pieces_bytes, whole_bytes


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sessions", type=int, default=300)
    ap.add_argument("--seconds", type=int, default=600)
    ap.add_argument("--body", type=int, default=300)
    a = ap.parse_args()
    input_bytes, pieces_bytes, whole_bytes = run(a.sessions, a.seconds, a.body)
    amp, base = pieces_bytes / input_bytes, whole_bytes / input_bytes
    print(f"{a.sessions} sessions, {a.seconds} s, {a.body}-byte events: input {input_bytes:,} B, "
          f"state as pieces {pieces_bytes:,} B, whole-state rewrites {whole_bytes:,} B")
    print(f"RESULT state_amplification={amp:.2f} baseline_amplification={base:.1f} ratio={base / amp:.1f}")


if __name__ == "__main__":
    main()
