"""The command line as a user runs it: a real subprocess per command."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import duckdb
import jsonschema
import orjson
import pytest

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures" / "rrweb"


def cli(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", "replaylens.cli", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=300, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    if check:
        assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("run")
    out = cli("run", "--sessions", "120", "--data-dir", str(d), "--quiet", "--fresh").stdout
    assert "sessions closed" in out and "example summary" in out
    return d


def test_run_writes_summaries_closed_sessions_and_duckdb(run_dir):
    summaries = [orjson.loads(line) for line in (run_dir / "summaries.ndjson").read_bytes().splitlines()]
    closed = [orjson.loads(line) for line in (run_dir / "closed-sessions.ndjson").read_bytes().splitlines()]
    assert len(closed) == 120 and len(summaries) == 120
    assert {s["window_id"] for s in summaries} == {c["window_id"] for c in closed}
    con = duckdb.connect(str(run_dir / "replaylens.duckdb"), read_only=True)
    assert con.execute("SELECT visits FROM site_stats").fetchone()[0] == 120
    con.close()


def test_sql_and_parquet_export(run_dir, tmp_path):
    out = cli("sql", "SELECT url, visits FROM url_stats ORDER BY visits DESC LIMIT 3", "--data-dir",
              str(run_dir), "--format", "json").stdout
    rows = [json.loads(line) for line in out.splitlines()]
    assert len(rows) == 3 and rows[0]["visits"] >= rows[1]["visits"]
    paths = cli("export", "--out", str(tmp_path / "pq"), "--data-dir", str(run_dir)).stdout.split()
    assert paths and all(Path(p).exists() for p in paths)
    con = duckdb.connect()
    assert con.execute(f"SELECT count(*) FROM '{tmp_path / 'pq'}/url_hourly.parquet'").fetchone()[0] > 0


def test_sql_error_is_clear(run_dir):
    proc = cli("sql", "SELECT nope FROM url_stats", "--data-dir", str(run_dir), check=False)
    assert proc.returncode != 0 and "nope" in proc.stderr and "Traceback" not in proc.stderr


def test_group_summary(run_dir):
    out = cli("group-summary", "--data-dir", str(run_dir), "--url", "/checkout").stdout
    group = json.loads(out)
    assert 0 < group["session_count"] <= 100


def test_schema_export_validates_events(tmp_path):
    cli("schema", "--out", str(tmp_path))
    schema = json.loads((tmp_path / "event.schema.json").read_text())
    jsonschema.validate({"session_id": "s", "timestamp": 1, "type": "click"}, schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"session_id": "s", "timestamp": 1, "type": "hover"}, schema)


def test_ingest_rrweb_fixture_to_contract_events():
    proc = cli("ingest-rrweb", str(FIXTURES / "posthog-docs.json"), "--session-id", "docs")
    events = [json.loads(line) for line in proc.stdout.splitlines()]
    # 9 Meta events, 5 page views: 4 are re-taken snapshots of the page already shown
    assert sum(e["type"] == "navigate" for e in events) == 5
    # one line per recording on stderr: format, counts, what was skipped by kind
    assert f"rrweb recording docs: 1151 rrweb events → {len(events)} events; skipped: unattributed-input 6" in proc.stderr


def test_run_on_an_rrweb_recording(tmp_path):
    out = cli("run", "--input", str(FIXTURES / "posthog-docs.json"), "--data-dir", str(tmp_path),
              "--quiet").stdout
    assert "sessions closed 1" in out


def test_bad_input_file_gives_a_clear_error(tmp_path):
    bad = tmp_path / "x.json"
    bad.write_text('{"hello": 1}')
    proc = cli("run", "--input", str(bad), "--data-dir", str(tmp_path), "--quiet", check=False)
    assert proc.returncode == 2 and "rrweb" in proc.stderr and "Traceback" not in proc.stderr
