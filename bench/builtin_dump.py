"""Every built-in summary of a large, varied set of closed sessions, one JSON line each.

A change to the built-in summarizer that must not change its output is checked by dumping before
and after and comparing the files (`cmp`). The set: the simulator's closed sessions (several seeds
and rates, through the embedded pipeline, so with comparisons), the real rrweb recordings in
tests/fixtures/rrweb (mapped, then closed by the sessionizing stage), the labelled sessions the
tests use; each summarized with several profiles (profiles/, the default, slices, filters,
context, an output schema) by two summarizer configurations.

    .venv/bin/python bench/builtin_dump.py --out /tmp/builtin-before.jsonl

The closed sessions are cached (`--cache`, JSON lines) so a second dump summarizes the very same
input without running the pipeline again.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Iterator

import orjson

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the tests' labelled sessions

from replaylens.config.settings import Settings  # noqa: E402
from replaylens.schemas.profiles import DEFAULT_PROFILE, SummaryProfile  # noqa: E402
from replaylens.sinks.builtin import BuiltinSummarizer  # noqa: E402
from replaylens.sinks.profiles_store import ProfileStore  # noqa: E402
from replaylens.streams.embedded import EmbeddedPipeline  # noqa: E402
from replaylens.streams.rrweb import ingest_recording  # noqa: E402
from replaylens.streams.simulator import simulate_bytes  # noqa: E402
from replaylens.streams.stage import Origin, SessionStage  # noqa: E402

# (sessions, seed, knobs): ordinary traffic, and traffic with much more trouble
SIMULATED_RUNS = ((1500, 1, {}), (1500, 2, {}), (1000, 3, {"frustration_rate": 0.6, "checkout_failure_rate": 0.6,
                                                            "slow_page_rate": 0.3, "console_error_rate": 0.3,
                                                            "identified_rate": 0.9}))
FAR_FUTURE_MS = 4_000_000_000_000  # the stage's clock when closing everything


def simulated(count: int, seed: int, knobs: dict[str, Any]) -> list[dict]:
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        settings = Settings(data_dir=d, duckdb_path=d / "b.duckdb", summaries_path=d / "s.ndjson")
        messages = (value for _key, value in simulate_bytes(count, seed=seed, **knobs))
        asyncio.run(EmbeddedPipeline(settings, examples=0).run(messages, progress=False))
        return [orjson.loads(line) for line in (d / "closed-sessions.ndjson").read_bytes().splitlines()]


def recordings() -> list[dict]:
    closed = []
    for path in sorted((ROOT / "tests" / "fixtures" / "rrweb").glob("*.json")):
        stage = SessionStage.from_settings(Settings())
        for event in ingest_recording(path.read_bytes(), session_id=path.stem):
            stage.process(0, json.dumps(event), Origin(), FAR_FUTURE_MS)
        closed += stage.flush(list(stage.partitions), close_all=True).closed
    return closed


def labelled() -> list[dict]:
    from tests import labelled_sessions as ls
    from tests import llm_sessions
    from tests.test_builtin_summarizer import clean_browse, comparison_on, troubled_session

    sessions = [ls.failing_signup(), ls.failed_payment(), ls.converted_with_harmless_error(), ls.reader(),
                ls.with_secrets(), llm_sessions.checkout_session(), llm_sessions.checkout_session(scrolls=40),
                llm_sessions.quiet_session(), clean_browse(), troubled_session()]
    with_comparisons = troubled_session()
    with_comparisons["comparisons"] = [comparison_on("https://shop.test/account/alice@example.com/orders"),
                                       comparison_on("https://shop.test/cart", "inp", worse=False),
                                       comparison_on("https://shop.test/cart", "cls")]
    coerced = troubled_session()  # values of other JSON types that validation converts, an extra key
    coerced["comparisons"] = [{**comparison_on("https://shop.test/cart"), "session_value": 4100, "sample_size": "120",
                               "worse": "true", "extra": 1}]
    not_of_the_contract = troubled_session()  # its summary fails validation: the error is compared
    not_of_the_contract["comparisons"] = [{**comparison_on("https://shop.test/cart"), "text": 5}]
    return sessions + [with_comparisons, coerced, not_of_the_contract]


def closed_sessions(cache: Path) -> list[dict]:
    """The simulated and recorded ones from the cache (made when missing), then the labelled ones."""
    if cache.exists():
        sessions = [orjson.loads(line) for line in cache.read_bytes().splitlines()]
    else:
        sessions = [s for count, seed, knobs in SIMULATED_RUNS for s in simulated(count, seed, knobs)]
        sessions += recordings()
        cache.write_bytes(b"".join(orjson.dumps(s) + b"\n" for s in sessions))
    return sessions + labelled()


def profiles() -> list[SummaryProfile]:
    from tests.test_builtin_summarizer import FULLSTORY_SCHEMA

    store = ProfileStore(ROOT / "profiles")
    return [DEFAULT_PROFILE, *[p for p in store.all() if p.id != DEFAULT_PROFILE.id],
            SummaryProfile(id="tail", slice={"mode": "LAST", "event_limit": 20}),
            SummaryProfile(id="head", slice={"mode": "FIRST", "duration_limit_ms": 60_000}),
            SummaryProfile(id="anon", context={"exclude": ["user", "location"]}),
            SummaryProfile(id="no-scroll", events={"exclude_types": ["scroll", "mouse-thrash"]}),
            SummaryProfile(id="nav-clicks", events={"include_types": ["navigate", "click", "rage-click"]}),
            SummaryProfile(id="fullstory", llm={"output_schema": FULLSTORY_SCHEMA})]


def summarizers() -> list[tuple[BuiltinSummarizer, bool]]:
    """(summarizer, with every profile): the default settings; links, poor vitals and no
    non-blocking errors with the first two profiles."""
    other = Settings(link_template="{replay_base_url}/s/{session_id}?t={timestamp_ms}",
                     replay_base_url="http://replay.test", summary_slow_page="poor",
                     summary_report_nonblocking_errors=False)
    return [(BuiltinSummarizer.from_settings(Settings()), True), (BuiltinSummarizer.from_settings(other), False)]


def summaries(sessions: list[dict], chosen: list[SummaryProfile]) -> Iterator[bytes]:
    for summarizer, every_profile in summarizers():
        for profile in chosen if every_profile else chosen[:2]:
            for session in sessions:
                try:
                    yield summarizer.summarize(session, profile, generated_at=0).model_dump_json().encode()
                except Exception as exc:  # noqa: BLE001 - the failure is part of the output compared
                    yield f"ERROR {type(exc).__name__}: {exc}".encode()


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "builtin-dump-sessions.jsonl")
    args = parser.parse_args()
    sessions = closed_sessions(args.cache)
    chosen = profiles()
    started = time.process_time()
    with args.out.open("wb") as out:
        count = 0
        for line in summaries(sessions, chosen):
            out.write(line + b"\n")
            count += 1
    print(f"{count} summaries of {len(sessions)} closed sessions x {len(chosen)} profiles -> {args.out} "
          f"({time.process_time() - started:.1f} s CPU)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
