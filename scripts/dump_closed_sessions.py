"""Dump the closed sessions (and dead letters) the sessionizing stage makes from fixed inputs, one
JSON line each, so two versions of the closing code can be compared byte for byte:

    python scripts/dump_closed_sessions.py OUT.ndjson     # prints a digest per input set

Inputs: the simulator (several seeds, with more disorder, and with small limits that split
windows), the real recordings in tests/fixtures/rrweb through the rrweb translator (as the
events topic carries them, and as `accept` takes mapped dicts), and an adversarial generator
(the shapes detection reads: targets with tags and roles, node ids, double clicks, click
responses, highlights, errors, recorder markers, automation markers, empty context objects;
duplicates, shuffles, session-ends, truncated events, missing event ids, merges and splits).
"""
from __future__ import annotations

import hashlib
import random
import sys
from pathlib import Path
from typing import Any, Iterable, Iterator

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import orjson  # noqa: E402

from replaylens.config.privacy import Masker  # noqa: E402
from replaylens.streams.ingest import EventDecoder, encode_event  # noqa: E402
from replaylens.streams.rrweb import map_recording  # noqa: E402
from replaylens.streams.sessionizer import SessionRules  # noqa: E402
from replaylens.streams.signals import SignalRules  # noqa: E402
from replaylens.streams.simulator import simulate_bytes  # noqa: E402
from replaylens.streams.stage import Origin, SessionStage  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
WALL = 2_000_000_000_000  # a fixed pipeline clock: runs are reproducible
FLUSH_EVERY = 997  # messages between flushes (an odd number: windows close mid-stream)
T0 = 1_700_000_000_000


def stage(rules: SessionRules, max_event_bytes: int = 64 * 1024, max_record_bytes: int = 1_000_000) -> SessionStage:
    s = SessionStage(rules, SignalRules(), EventDecoder(Masker(), max_event_bytes=max_event_bytes))
    s.max_record_bytes = max_record_bytes
    return s


def run(st: SessionStage, messages: Iterable[bytes], partitions: int = 2) -> Iterator[bytes]:
    """Messages through the stage as the runners drive it; each closed session and dead letter."""
    origin = Origin("dump", 0)
    clock = WALL
    for n, raw in enumerate(messages, start=1):
        st.process(n % partitions, raw, origin, WALL, clock_ms=clock)
        if n % FLUSH_EVERY == 0:
            clock += 1_000
            yield from _flushed(st.flush(range(partitions), clock))
    yield from _flushed(st.flush(range(partitions), close_all=True))


def _flushed(flush: Any) -> Iterator[bytes]:
    for dl in flush.dead_letters:
        yield orjson.dumps({k: v for k, v in dl.items() if k != "received_at"}, option=orjson.OPT_SORT_KEYS)
    for session in flush.closed:
        yield orjson.dumps(session)
    # Sorted: the order of session ids within a flush follows a set's (hash seed) order.
    for partition, key, value in sorted(flush.state, key=lambda r: (r[0], r[1])):
        yield orjson.dumps({"partition": partition, "state_key": key.decode("utf-8", "replace"),
                            "bytes": len(value or b"")})


def simulator_sets() -> Iterator[tuple[str, SessionStage, Iterable[bytes]]]:
    default = SessionRules(grace_ms=30_000, min_senders=5)
    for seed in (1, 2, 3, 4, 5):
        yield f"sim seed {seed}", stage(default), (v for _k, v in simulate_bytes(1500, seed=seed))
    yield "sim disorder 0.3", stage(default), (v for _k, v in simulate_bytes(800, seed=7, disorder_rate=0.3))
    small = SessionRules(gap_ms=20_000, grace_ms=5_000, max_duration_ms=120_000, max_events=9,
                         max_bytes=6_000, min_senders=2)
    yield "sim small limits", stage(small, max_record_bytes=9_000), \
        (v for _k, v in simulate_bytes(600, seed=8, disorder_rate=0.1))


def rrweb_sets() -> Iterator[tuple[str, SessionStage, Iterable[bytes]]]:
    rules = SessionRules(min_senders=1)
    for path in sorted((ROOT / "tests" / "fixtures" / "rrweb").glob("*.json")):
        try:
            mapped = map_recording(path.read_bytes(), session_id=path.stem)
        except Exception as exc:  # noqa: BLE001 - a recording the translator refuses is part of the dump
            yield f"rrweb {path.name} refused", stage(rules), [orjson.dumps({"refused": type(exc).__name__})]
            continue
        encoded = [d for d in (encode_event(ev, 64 * 1024) for ev in mapped.events) if d is not None]
        yield f"rrweb {path.name} bytes", stage(rules), encoded
        st = stage(rules)
        yield f"rrweb {path.name} accept", st, _accepting(st, mapped.events)


def _accepting(st: SessionStage, events: list[dict]) -> Iterator[bytes]:
    """Mapped dicts through `accept` (the in-process path), as bytes the stage decodes again."""
    for ev in events:
        result = st.decoder.accept(dict(ev), WALL)
        if hasattr(result, "json"):
            yield result.json.encode()


# -- the adversarial generator --------------------------------------------------------------------
_SELECTORS = ["button#buy", "a.cta", "input#email", "textarea", "div.card > span", "label", "select#size",
              "input[type=checkbox]", "p.text", "", "BUTTON > INPUT.x"]
_TAGS = [None, "button", "input", "textarea", "p", "span", "a", "label", "option", "div"]
_MARKERS = ["window hidden", "window visible", "sessionIdle", "sessionNoLongerIdle", "Order Completed",
            "recording paused", "Added to Cart"]
_AGENTS = ["Mozilla/5.0 Firefox/133", "Mozilla/5.0 HeadlessChrome/120", "Mozilla/5.0 (X11) Playwright", None]
_KINDS = ["click"] * 8 + ["navigate"] * 3 + ["highlight", "console-error", "network-error", "custom", "custom",
                                            "input-change", "copy", "paste", "scroll", "web-vitals",
                                            "rage-click", "dead-click", "error-click", "mouse-thrash",
                                            "element-seen", "session-end"]


def _ctx(rng: random.Random, fields: dict[str, Any]) -> Any:
    roll = rng.random()
    if roll < 0.5:
        return None
    if roll < 0.6:
        return {}
    if roll < 0.7:
        return {"id": None}
    return fields


def adversarial_event(rng: random.Random, sid: str, ts: int, n: int, url: str) -> dict[str, Any]:
    kind = rng.choice(_KINDS)
    ev: dict[str, Any] = {"session_id": sid, "timestamp": ts, "type": kind}
    if rng.random() < 0.9:
        ev["event_id"] = f"{sid}-{n}"
    if kind == "navigate" or rng.random() < 0.7:
        ev["url"] = url
    target: dict[str, Any] = {}
    if kind in ("click", "rage-click", "dead-click", "error-click", "input-change", "highlight", "copy"):
        target["selector"] = rng.choice(_SELECTORS)
        if rng.random() < 0.6:
            target["text"] = rng.choice(["Buy", "Pay now", "Size", "hello world", "alice@example.com"])
        tag = rng.choice(_TAGS)
        if tag:
            target["tag"] = tag
        if rng.random() < 0.15:
            target["type"] = rng.choice(["checkbox", "radio", "text", "submit", ""])
        if rng.random() < 0.1:
            target["role"] = rng.choice(["switch", "tab", "button"])
        ev["target"] = target
    props: dict[str, Any] = {}
    if kind == "click":
        if rng.random() < 0.3:
            props["node_id"] = rng.choice([1, 2, 3, "4"])
        if rng.random() < 0.15:
            props["double_click"] = True
        if rng.random() < 0.25:
            props["response"] = rng.choice([{"after_ms": rng.randint(0, 5000)}, {"none_within_ms": rng.choice([1000, 2500, 3000])},
                                            {"kind": "mutation"}])
    if kind == "highlight":
        props["duration_ms"] = rng.choice([0, 300, 1500, 12_000, -500, 2.5])
    if kind == "custom":
        ev["name"] = rng.choice(_MARKERS)
    if kind == "console-error":
        ev["error"] = {"message": rng.choice(["TypeError: x is undefined", "puppeteer evaluation failed",
                                              "card 4111 1111 1111 1111 refused"])}
    if kind == "network-error":
        ev["error"] = {"status": rng.choice([500, 422, 0, None]), "method": rng.choice(["POST", None]),
                       "request_url": url + "/api?token=abc"}
    if kind == "input-change":
        ev["value"] = "secret typed text"
    if kind == "web-vitals":
        ev["metrics"] = {"lcp": rng.randint(100, 5000), "cls": 0.1}
    if rng.random() < 0.05:
        props["blob"] = "x" * rng.randint(3_000, 9_000)  # truncated at a small max_event_bytes
    if props:
        ev["properties"] = props
    user = _ctx(rng, {"id": f"u-{sid}", "email": "alice@example.com"})
    if user is not None:
        ev["user"] = user
    agent = rng.choice(_AGENTS)
    device = _ctx(rng, {"type": "desktop", **({"user_agent": agent} if agent else {})})
    if device is not None:
        if rng.random() < 0.03:
            device = {"automation": "webdriver"}
        ev["device"] = device
    for name in ("org", "location"):
        value = _ctx(rng, {"id": "o1", "name": "Acme"} if name == "org" else {"country": "FR"})
        if value is not None:
            ev[name] = value
    return ev


def adversarial_messages(seed: int, sessions: int = 60) -> list[bytes]:
    rng = random.Random(seed)
    events: list[dict[str, Any]] = []
    for s in range(sessions):
        sid = f"adv{seed}-{s}"
        ts = T0 + rng.randint(0, 600_000)
        url = rng.choice(["https://a.test/", "https://a.test/cart", "https://a.test/pay"])
        for n in range(rng.randint(1, 40)):
            ts += rng.choice([0, 0, 50, 200, 400, 900, 1_500, 2_600, 6_000, 11_000, 40_000, 200_000])
            if rng.random() < 0.1:
                url = rng.choice(["https://a.test/", "https://a.test/cart", "https://a.test/pay?email=a@b.co"])
            ev = adversarial_event(rng, sid, ts, n, url)
            events.append(ev)
            if rng.random() < 0.05:
                events.append(dict(ev))  # a duplicate (same event id; or, without one, same bytes)
    events.sort(key=lambda e: e["timestamp"])
    # Disorder: some events delivered up to 20 s late, a few much later.
    delivery = [(e["timestamp"] + (rng.choice([0, 0, 0, 500, 3_000, 20_000, 900_000]) if rng.random() < 0.3 else 0), i, e)
                for i, e in enumerate(events)]
    return [orjson.dumps(e) for _d, _i, e in sorted(delivery, key=lambda x: (x[0], x[1]))]


def adversarial_sets() -> Iterator[tuple[str, SessionStage, Iterable[bytes]]]:
    for seed in range(8):
        rules = SessionRules(gap_ms=[60_000, 300_000][seed % 2], grace_ms=[5_000, 30_000][seed % 2],
                             max_duration_ms=[10**9, 400_000][seed // 4], max_events=[10_000, 17][seed // 4 % 2],
                             max_bytes=[256 * 1024, 20_000][seed % 3 == 0], min_senders=1 + seed % 3)
        yield f"adversarial seed {seed}", stage(rules, max_event_bytes=4_096, max_record_bytes=40_000 if seed == 3 else 1_000_000), \
            adversarial_messages(seed)


def main() -> None:
    out_path = Path(sys.argv[1])
    total = hashlib.sha256()
    with out_path.open("wb") as out:
        for sets in (simulator_sets, rrweb_sets, adversarial_sets):
            for name, st, messages in sets():
                digest, lines = hashlib.sha256(), 0
                for line in run(st, messages):
                    out.write(line + b"\n")
                    digest.update(line)
                    lines += 1
                total.update(digest.digest())
                print(f"{name:<48} {lines:>6} lines  {digest.hexdigest()[:16]}  (internal errors "
                      f"{st.counters.internal_errors}, closed {st.counters.sessions_closed})")
    print(f"all {total.hexdigest()}")


if __name__ == "__main__":
    main()
