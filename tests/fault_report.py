"""What a fault test measured, printed in one block (run `pytest -m fault -s` to see them).

Every fault test reports the same figures: messages in, sessions in and out, events lost,
duplicates and their keys, dead letters by reason, the worker's peak memory.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Optional


def peak_memory_kib(pid: Optional[int]) -> Optional[int]:
    """The process's peak resident set (VmHWM), read from /proc while it still runs."""
    if pid is None:
        return None
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError):
        return None
    return None


@dataclass
class FaultReport:
    name: str
    messages_in: int
    expected: dict[str, set[str]]  # session id -> event ids sent
    closed: list[dict[str, Any]] = field(default_factory=list)  # closed-session records read back
    dead_letters: list[dict[str, Any]] = field(default_factory=list)
    peak_kib: list[Optional[int]] = field(default_factory=list)  # one per worker process
    extra: dict[str, Any] = field(default_factory=dict)

    def windows(self) -> dict[str, dict[str, Any]]:
        return {r["value"]["window_id"]: r["value"] for r in self.closed}

    def got(self) -> dict[str, set[str]]:
        out: dict[str, set[str]] = {}
        for w in self.windows().values():
            out.setdefault(w["session_id"], set()).update(e["event_id"] for e in w["events"])
        return out

    def lost(self) -> dict[str, list[str]]:
        got = self.got()
        return {sid: sorted(ids - got.get(sid, set())) for sid, ids in self.expected.items()
                if ids - got.get(sid, set())}

    def duplicate_windows(self) -> dict[str, int]:
        """Window ids published more than once (same idempotency key: consumers dedupe them)."""
        counts = Counter(r["value"]["window_id"] for r in self.closed)
        return {k: n for k, n in counts.items() if n > 1}

    def duplicate_events(self) -> dict[str, list[str]]:
        """Event ids in more than one distinct window (would be a real duplicate)."""
        seen: dict[str, list[str]] = {}
        for wid, w in self.windows().items():
            for e in w["events"]:
                seen.setdefault(e["event_id"], []).append(wid)
        return {eid: wids for eid, wids in seen.items() if len(wids) > 1}

    def dead_letters_by_reason(self) -> dict[str, int]:
        return dict(Counter(r["value"]["reason"] for r in self.dead_letters))

    def print(self) -> None:
        lost = self.lost()
        dup_windows = self.duplicate_windows()
        dup_events = self.duplicate_events()
        lines = [
            f"FAULT {self.name}",
            f"  messages in          {self.messages_in}",
            f"  sessions in / out    {len(self.expected)} / {len({w['session_id'] for w in self.windows().values()})}"
            f" ({len(self.windows())} distinct windows, {len(self.closed)} records)",
            f"  events lost          {sum(len(v) for v in lost.values())}"
            + (f" e.g. {list(lost.items())[:2]}" if lost else ""),
            f"  duplicate windows    {len(dup_windows)}" + (f" keys {sorted(dup_windows)[:5]}" if dup_windows else ""),
            f"  duplicate events     {len(dup_events)}" + (f" e.g. {list(dup_events.items())[:3]}" if dup_events else ""),
            f"  dead letters         {self.dead_letters_by_reason()}",
            f"  peak memory (KiB)    {self.peak_kib}",
        ]
        for r in self.dead_letters[:3]:
            v = r["value"]
            lines.append(f"  e.g. dead letter    {v['reason']} {v['topic']}[{v['partition']}]@{v['offset']} "
                         f"session {v['session_id']}: {v['error'][:160]}")
        lines += [f"  {k:<20} {v}" for k, v in self.extra.items()]
        print("\n".join(lines))


def by_session(events: Iterable[dict[str, Any]]) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for e in events:
        out.setdefault(e["session_id"], set()).add(e["event_id"])
    return out
