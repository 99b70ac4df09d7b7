"""The summarize role's summary encoding (sinks/summarize.py `encode_summary`): pydantic's bytes."""
from __future__ import annotations

import inspect
from pathlib import Path

import orjson
import pytest

from replaylens.config.settings import Settings
from replaylens.schemas.profiles import DEFAULT_PROFILE
from replaylens.schemas.sessions import Comparison
from replaylens.schemas.summaries import Summary
from replaylens.sinks.profiles_store import ProfileStore
from replaylens.sinks.summarize import _PLAIN_MODELS, _nested_models, encode_summary
from replaylens.streams.simulator import simulate_bytes
from replaylens.streams.stage import Origin, SessionStage, now_ms
from replaylens.streams.wiring import build_core
from tests import labelled_sessions

PROFILES = Path(__file__).resolve().parents[1] / "profiles"


def pydantic_json(summary: Summary) -> bytes:
    return summary.__pydantic_serializer__.to_json(summary)


def closed_sessions(count: int, seed: int) -> list[dict]:
    stage = SessionStage.from_settings(Settings())
    for i, (_key, value) in enumerate(simulate_bytes(count, seed=seed, session_end_rate=0.5)):
        stage.process(0, value, Origin("events", 0, i), now_ms())
    return stage.flush([0], close_all=True, with_state=False).closed


def comparison(url: str, value, baseline, text: str, worse: bool = True) -> dict:
    return {"url": url, "metric": "lcp", "session_value": value, "baseline_value": baseline,
            "baseline": "p75", "sample_size": 12, "worse": worse, "text": text}


def with_odd_values(session: dict) -> dict:
    """Comparison figures as integers and extremes, texts with escapes and non-ASCII, a user
    with nested values: what the closing stage or another producer of the topic may write."""
    url = (session.get("pages") or [{"url": "https://shop.example.com/"}])[0]["url"]
    session["comparisons"] = [
        comparison(url, 2400, 1800, "LCP 2,400 ms against 1,800 ms (p75)"),
        comparison(url, 0.1 + 0.2, 1e-7, "tabs\tand \"quotes\" \\ and\nnewlines \u2028 \x01"),
        comparison(url, 1e21, -0.0, "ünïcödé 页面 🚀", worse=False),
        comparison(url, 123456789.123456789, 5e-324, "figures"),
    ]
    session["context"] = {**(session.get("context") or {}),
                          "user": {"id": "u-1", "email": "x@example.com", "plan": {"tier": 3, "trial": False}}}
    return session


def test_built_in_summaries_encode_to_pydantics_bytes():
    """Simulated sessions, the labelled ones, odd values (integer figures, which pydantic writes
    as floats: 2400.0), every shipped profile (one answers with a JSON schema)."""
    sessions = closed_sessions(120, seed=3)
    sessions += [with_odd_values(s) for s in closed_sessions(30, seed=4)]
    sessions += [make() for _name, make in inspect.getmembers(labelled_sessions, inspect.isfunction)
                 if make.__module__ == labelled_sessions.__name__ and not inspect.signature(make).parameters]
    core = build_core(Settings(), with_store=False)
    profiles = ProfileStore(PROFILES).all()
    assert len(profiles) > 1 and any(p.llm.output_schema for p in profiles)
    summaries = [core.sink.builtin.summarize(s, p, generated_at=1_700_000_000_000)
                 for s in sessions for p in profiles]
    assert any(x.comparisons for x in summaries) and any(x.potential_issues for x in summaries)
    assert b'"session_value":2400.0' in b"".join(pydantic_json(x) for x in summaries)
    for x in summaries:
        assert encode_summary(x) == pydantic_json(x)


def test_every_model_of_a_summary_is_encoded_from_its_fields():
    """A model pydantic writes otherwise (alias, exclusion, custom serializer) would fall back
    to pydantic whole: correct, but the speed would be lost without notice."""
    assert set(_nested_models(Summary)) == _PLAIN_MODELS
    assert Comparison in _PLAIN_MODELS


@pytest.mark.filterwarnings("ignore::UserWarning")  # pydantic's, on the odd user values
def test_what_orjson_cannot_write_as_pydantic_does_is_written_by_pydantic():
    base = dict(idempotency_key="k", session_id="s", window_id="s@1", profile_id=DEFAULT_PROFILE.id,
                status="READY", summarizer="builtin", generated_at=1, started_at=1, ended_at=2, summary="")
    odd_users = [{1: "an integer key"}, {"big": 2 ** 70}, {"tags": {"a"}}]
    for user in odd_users:
        summary = Summary.model_construct(**base, user=user)
        assert encode_summary(summary) == pydantic_json(summary)
    assert orjson.loads(encode_summary(Summary(**base, user={"id": "u"})))["user"] == {"id": "u"}
