"""The embedded runner (streams/embedded.py): every closed session and summary written, built-in
summaries made without the event loop equal to the sink's own, open sessions bounded by time."""
from __future__ import annotations

import asyncio
from itertools import islice
from pathlib import Path

import orjson

from replaylens.aggregates.store import AggregateStore
from replaylens.config.settings import Settings
from replaylens.sinks.ndjson import read_summaries
from replaylens.streams.embedded import EmbeddedPipeline
from replaylens.streams.simulator import simulate_bytes
from replaylens.streams.stage import Origin, SessionStage, now_ms
from replaylens.streams.wiring import build_core

SESSIONS = 120


def settings_in(d: Path, **overrides) -> Settings:
    return Settings(data_dir=d, duckdb_path=d / "a.duckdb", summaries_path=d / "s.ndjson", **overrides)


def closed_sessions(core, sessions: int) -> list[dict]:
    for _key, raw in simulate_bytes(sessions, seed=4):
        core.stage.process(0, raw, Origin("t", 0), now_ms())
    return core.flush_now([0], None, now_ms(), close_all=True, with_state=False).closed


def test_run_writes_every_closed_session_its_summary_and_aggregates(tmp_path):
    s = settings_in(tmp_path)
    report = asyncio.run(EmbeddedPipeline(s, examples=0).run(
        (v for _k, v in simulate_bytes(SESSIONS, seed=4)), progress=False))
    closed = [orjson.loads(line) for line in (tmp_path / "closed-sessions.ndjson").read_bytes().splitlines()]
    summaries = read_summaries(s.summaries_path)
    assert report.counters["sessions_closed"] == len(closed) == SESSIONS
    assert report.summaries == len(summaries) == SESSIONS  # one streaming profile by default
    assert sorted(x["session_id"] for x in summaries) == sorted(c["session_id"] for c in closed)
    assert all("comparisons" in c for c in closed)
    with AggregateStore(s.duckdb_path, read_only=True) as store:
        _cols, [(visits,)] = store.query("SELECT sum(visits) FROM url_hourly WHERE url = '*'")
    assert visits == sum(1 for c in closed if not c.get("automated"))


def test_builtin_summaries_without_the_event_loop_equal_the_sinks(tmp_path):
    core = build_core(settings_in(tmp_path))
    core.sink.clock = lambda: 1_700_000_000.0  # generated_at is the only wall time in a summary
    sessions = closed_sessions(core, 30)
    assert core.sink.builtin_only
    now = [x.model_dump() for s in sessions for x in core.sink.summarize_builtin(s)]
    looped = [x.model_dump() for s in sessions for x in asyncio.run(core.sink.summarize_closed(s))]
    via_core = [x.model_dump() for x in asyncio.run(core.summarize_all(sessions))]
    assert now == looped == via_core and len(now) == 30
    asyncio.run(core.aclose())


def test_open_sessions_stay_bounded_as_event_time_passes():
    """Memory follows open sessions: with sessions closing after a minute of inactivity, the
    open ones stay a small share of all those seen, however many arrive."""
    stage = SessionStage.from_settings(Settings(session_gap_ms=60_000))
    source = (v for _k, v in simulate_bytes(1_500, seed=4))
    most_open, origin, wall = 0, Origin("t", 0), now_ms()
    while chunk := list(islice(source, 2_000)):
        for raw in chunk:
            stage.process(0, raw, origin, wall)
        stage.flush([0], wall, with_state=False)
        most_open = max(most_open, stage.open_sessions())
    assert stage.counters.sessions_closed > 1_000
    assert 0 < most_open < 300


def test_an_embedded_run_leaves_one_sketch_row_per_bin_and_loses_no_sample(tmp_path):
    """Writes append sketch rows and only the worker's prune timer compacts them: the embedded run
    compacts at its end (nothing deleted: every stored sample is still counted once)."""
    s = settings_in(tmp_path)
    asyncio.run(EmbeddedPipeline(s, examples=0).run(
        (v for _k, v in simulate_bytes(400, seed=5)), progress=False))
    with AggregateStore(s.duckdb_path, read_only=True) as store:
        _c, [(repeated,)] = store.query("SELECT count(*) FROM (SELECT bucket, url, metric, bin FROM vital_sketches "
                                        "GROUP BY ALL HAVING count(*) > 1)")
        _c, [(counted,)] = store.query("SELECT sum(count) FROM vital_sketches")
        _c, [(samples,)] = store.query("SELECT count(*) FROM vital_samples")
    assert repeated == 0
    assert counted == samples > 0
