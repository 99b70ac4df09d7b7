"""The example profiles shipped in profiles/ (mounted by docker-compose) load and summarize."""
import json
from pathlib import Path

import jsonschema

from replaylens.sinks.builtin import BuiltinSummarizer
from replaylens.sinks.profiles_store import ProfileStore
from replaylens.streams.simulator import simulate
from replaylens.streams.stage import Origin, SessionStage
from replaylens.config.settings import Settings

PROFILES = Path(__file__).resolve().parents[1] / "profiles"


def test_shipped_profiles_load_and_give_schema_valid_summaries():
    store = ProfileStore(PROFILES)
    support = store.get("support")
    assert support is not None and store.get("default") is not None
    stage = SessionStage.from_settings(Settings())
    for ev in simulate(20, seed=1):
        stage.process(0, json.dumps(ev), Origin(), 4_000_000_000_000)
    sessions = stage.flush(list(stage.partitions), close_all=True).closed
    summarizer = BuiltinSummarizer("{replay_base_url}/s/{session_id}?t={timestamp_ms}", "http://r")
    for session in sessions:
        summary = summarizer.summarize(session, support, generated_at=1)
        jsonschema.validate(json.loads(summary.summary), support.llm.output_schema)
