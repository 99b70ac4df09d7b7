"""`replaylens sql` and `replaylens export` are read-only and confined (issue 9.7).

Every attack below is refused with a clear error; afterwards the aggregates file, an arbitrary
file and another DuckDB database are byte for byte unchanged, and no file content was read.
DuckDB's own settings do the confining (enable_external_access=false, no extension install or
autoload, lock_configuration=true); a SELECT-only check comes on top.
"""
from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from replaylens.aggregates.store import AggregateStore, ReadOnlyQueryError
from replaylens.cli import main

ROOT = Path(__file__).resolve().parents[1]
CANARY_TEXT = "canary-7f3a secret content"


@pytest.fixture
def world(tmp_path):
    db = tmp_path / "agg.duckdb"
    AggregateStore(db).close()
    canary = tmp_path / "canary.csv"
    canary.write_text(f"a,b\n{CANARY_TEXT},1\n")
    other = tmp_path / "other.duckdb"
    con = duckdb.connect(str(other))
    con.execute("CREATE TABLE precious AS SELECT 42 AS answer")
    con.close()
    return {"db": db, "canary": canary, "other": other, "dir": tmp_path}


def fingerprint(directory: Path) -> dict[str, str]:
    return {str(p.relative_to(directory)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(directory.rglob("*")) if p.is_file()}


ATTACKS = [
    "COPY url_hourly TO '{db}'",
    "COPY (SELECT 1) TO '{canary}' (FORMAT csv)",
    "COPY url_hourly TO '{dir}/new.csv'",
    "EXPORT DATABASE '{dir}/dump'",
    "ATTACH '{other}' AS o (READ_WRITE)",
    "ATTACH '{other}' AS o; DROP TABLE o.precious",
    "INSTALL httpfs",
    "FORCE INSTALL httpfs",
    "LOAD httpfs",
    "SELECT * FROM read_csv('{canary}')",
    "SELECT * FROM read_csv_auto('{canary}')",
    "SELECT * FROM read_text('{canary}')",
    "SELECT * FROM read_blob('{canary}')",
    "SELECT * FROM read_json('{canary}')",
    "SELECT * FROM read_parquet('{canary}')",
    "SELECT * FROM sniff_csv('{canary}')",
    "SELECT * FROM glob('{dir}/*')",
    "SELECT * FROM glob('/root/*')",
    "SELECT * FROM read_csv('/etc/passwd')",
    "SELECT * FROM '{canary}'",
    "WITH x AS (SELECT * FROM read_text('{canary}')) SELECT content FROM x",
    "SELECT (SELECT count(*) FROM read_text('{canary}')) AS n FROM url_stats",
    "SET enable_external_access = true",
    "SET threads = 1",
    "RESET lock_configuration",
    "PRAGMA enable_profiling",
    "CALL pragma_version()",
    "SELECT 1; COPY (SELECT 1) TO '{canary}'",
    "CREATE TABLE y AS SELECT 1",
    "CHECKPOINT",
]


@pytest.mark.parametrize("attack", ATTACKS)
def test_sql_refuses_and_touches_nothing(world, attack, capsys):
    before = fingerprint(world["dir"])
    code = main(["sql", attack.format(**world), "--db", str(world["db"])])
    out = capsys.readouterr()
    assert code == 2, out
    assert "replaylens sql:" in out.err and "Traceback" not in out.err
    assert CANARY_TEXT not in out.out + out.err
    assert fingerprint(world["dir"]) == before
    con = duckdb.connect(str(world["other"]), read_only=True)
    assert con.execute("SELECT answer FROM precious").fetchone() == (42,)
    con.close()


def test_duckdb_settings_confine_even_a_plain_select(world):
    """Not just a keyword filter: the connection itself refuses files, extensions and settings."""
    store = AggregateStore(world["db"], read_only=True, confined=True)
    try:
        settings = dict(store.query("SELECT name, value FROM duckdb_settings() WHERE name IN "
                                    "('enable_external_access', 'lock_configuration', "
                                    "'autoinstall_known_extensions', 'autoload_known_extensions')")[1])
        assert settings == {"enable_external_access": "false", "lock_configuration": "true",
                            "autoinstall_known_extensions": "false", "autoload_known_extensions": "false"}
        with pytest.raises(duckdb.PermissionException):  # through query(), which has no filter
            store.query(f"SELECT * FROM read_text('{world['canary']}')")
        with pytest.raises(ReadOnlyQueryError):
            store.query_select("INSTALL httpfs")
    finally:
        store.close()


def test_sql_still_answers_selects(world, capsys):
    assert main(["sql", "SELECT count(*) AS n FROM url_stats", "--db", str(world["db"]), "--format", "json"]) == 0
    assert capsys.readouterr().out.strip() == '{"n": 0}'


def test_export_writes_only_where_asked(world, tmp_path):
    out = tmp_path / "pq"
    before = fingerprint(world["dir"])
    assert main(["export", "--out", str(out), "--db", str(world["db"])]) == 0
    after = fingerprint(world["dir"])
    new = sorted(set(after) - set(before))
    assert new and all(name.startswith("pq/") and name.endswith(".parquet") for name in new)
    assert {k: after[k] for k in before} == before


def test_export_refuses_a_table_name_that_is_sql(world, tmp_path, capsys):
    before = fingerprint(world["dir"])
    code = main(["export", "--out", str(tmp_path / "pq"), "--db", str(world["db"]),
                 "--tables", f"url_hourly TO '{world['canary']}' --"])
    assert code == 2 and "cannot export" in capsys.readouterr().err
    assert {k: v for k, v in fingerprint(world["dir"]).items() if not k.startswith("pq")} == before


def test_the_installed_command_refuses_copy_as_a_user_runs_it(world):
    proc = subprocess.run([sys.executable, "-m", "replaylens.cli", "sql",
                           f"COPY url_hourly TO '{world['canary']}'", "--db", str(world["db"])],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "only SELECT statements" in proc.stderr
    assert world["canary"].read_text() == f"a,b\n{CANARY_TEXT},1\n"
