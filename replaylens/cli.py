"""The `replaylens` command line."""
from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from pathlib import Path
from typing import Any, Iterator, Optional

import orjson

from replaylens.config.settings import Settings


def _settings(args: argparse.Namespace) -> Settings:
    overrides: dict[str, Any] = {}
    if getattr(args, "data_dir", None):
        d = Path(args.data_dir)
        overrides.update(data_dir=d, duckdb_path=d / "replaylens.duckdb", summaries_path=d / "summaries.ndjson")
    if getattr(args, "bootstrap", None):
        overrides["kafka_bootstrap"] = args.bootstrap
    return Settings(**overrides)


# -- run: the embedded default --------------------------------------------------------------
def _input_messages(args: argparse.Namespace) -> tuple[Iterator[bytes], Optional[int]]:
    if args.input:
        path = Path(args.input)
        if path.suffix == ".json":  # an rrweb recording
            from replaylens.streams.rrweb import ingest_recording, options_from_settings
            events = ingest_recording(path.read_bytes(), options=options_from_settings(_settings(args)))
            return (orjson.dumps(e) for e in events), len(events)
        return (line for line in path.open("rb") if line.strip()), None
    from replaylens.streams.simulator import simulate_bytes
    return (value for _key, value in simulate_bytes(args.sessions, seed=args.seed, **_spike(args))), None


def _spike(args: argparse.Namespace) -> dict[str, Any]:
    """--spike URL: a frustration spike on that page (alerts, issue 14)."""
    from replaylens.streams.simulator import Spike

    if not getattr(args, "spike", None):
        return {}
    return {"spike": Spike(args.spike, getattr(args, "spike_start_ms", None))}


def cmd_run(args: argparse.Namespace) -> int:
    from replaylens.streams.embedded import EmbeddedPipeline
    from replaylens.report import print_report
    from replaylens.streams.stage import tune_gc

    s = _settings(args)
    if args.input and args.spike:
        print("--spike goes with the simulator, not with --input", file=sys.stderr)
        return 2
    for path in (s.summaries_path, s.duckdb_path):
        if args.fresh and path.exists():
            path.unlink()
    messages, total = _input_messages(args)
    tune_gc()
    pipeline = EmbeddedPipeline(s, examples=args.examples)
    report = asyncio.run(pipeline.run(messages, total=total, progress=not args.quiet))
    print_report(report, s)
    return 0


# -- simulate -----------------------------------------------------------------------------------
def cmd_simulate(args: argparse.Namespace) -> int:
    from replaylens.streams.simulator import simulate_bytes

    knobs = dict(seed=args.seed, start_ms=args.start_ms, **_spike(args))
    if not args.kafka:
        out = sys.stdout.buffer
        for _key, value in simulate_bytes(args.sessions, **knobs):
            out.write(value + b"\n")
        return 0
    s = _settings(args)
    from replaylens.streams.producer import produce_pairs
    sent = asyncio.run(produce_pairs(s.kafka_bootstrap, args.topic or s.topic_events,
                                     simulate_bytes(args.sessions, **knobs)))
    print(f"produced {sent} events to {args.topic or s.topic_events}", file=sys.stderr)
    return 0


# -- rrweb -------------------------------------------------------------------------------------
def cmd_ingest_rrweb(args: argparse.Namespace) -> int:
    from replaylens.streams.rrweb import map_recording, options_from_settings

    mapped = map_recording(Path(args.recording).read_bytes(), session_id=args.session_id,
                           options=options_from_settings(_settings(args)))
    print(mapped.summary(), file=sys.stderr)  # what was read, so a user can see what was skipped
    events = mapped.events
    if args.kafka:
        s = _settings(args)
        from replaylens.streams.producer import produce_pairs
        pairs = ((e["session_id"].encode(), orjson.dumps(e)) for e in events)
        sent = asyncio.run(produce_pairs(s.kafka_bootstrap, s.topic_events, pairs))
        print(f"produced {sent} events to {s.topic_events}", file=sys.stderr)
        return 0
    out = sys.stdout.buffer
    for e in events:
        out.write(orjson.dumps(e) + b"\n")
    return 0


# -- worker ------------------------------------------------------------------------------------
def cmd_worker(args: argparse.Namespace) -> int:
    import faust

    from replaylens.streams.agents import create_worker_app
    from replaylens.streams.stage import tune_gc
    from replaylens.streams.topics import ensure_topics

    from replaylens.config.log_safety import install_log_redaction

    install_log_redaction()  # before Faust logs anything: no event contents in the worker's log
    s = _settings(args)
    try:
        s.roles
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    tune_gc()
    asyncio.run(ensure_topics(s))
    app, _ctx = create_worker_app(s)
    worker = faust.Worker(app, loglevel=s.log_level.lower(), quiet=True)
    # Faust's terminal spinner sets the root logger to DEBUG: every aiokafka debug record
    # would then be built and handled (it halved throughput, bench/kafka_bench.py).
    worker.spinner = None
    worker.execute_from_commandline()
    return 0


# -- api ---------------------------------------------------------------------------------------
def cmd_api(args: argparse.Namespace) -> int:
    from replaylens.api.app import serve

    s = _settings(args)
    logging.getLogger().setLevel(s.log_level.upper())
    asyncio.run(serve(s, ready=lambda address: print(f"listening on {address}", flush=True)))
    return 0


def health_url(s: Settings) -> str:
    host = "127.0.0.1" if s.metrics_host in ("0.0.0.0", "::", "") else s.metrics_host
    return f"http://{host}:{s.metrics_port}/health"


def cmd_health(args: argparse.Namespace) -> int:
    """Exit 0 when this machine's worker answers /health with 200 (docker-compose's healthcheck)."""
    import urllib.error
    import urllib.request

    s = _settings(args)
    if not args.url and not s.metrics_port:
        raise ValueError("REPLAYLENS_METRICS_PORT is 0: the worker serves no /health")
    url = args.url or health_url(s)
    try:
        with urllib.request.urlopen(url, timeout=args.timeout) as resp:
            print(resp.read().decode())
            return 0
    except urllib.error.HTTPError as exc:
        print(exc.read().decode(), file=sys.stderr)
    except (urllib.error.URLError, OSError) as exc:
        print(f"replaylens health: {url}: {exc}", file=sys.stderr)
    return 1


# -- schema ------------------------------------------------------------------------------------
def json_schemas() -> dict[str, dict[str, Any]]:
    from replaylens.schemas.alerts import Alert
    from replaylens.schemas.dead_letter import DeadLetter
    from replaylens.schemas.events import Event
    from replaylens.schemas.profiles import SummaryProfile
    from replaylens.schemas.sessions import ClosedSession
    from replaylens.schemas.summaries import Summary

    return {"event": Event.model_json_schema(), "closed-session": ClosedSession.model_json_schema(),
            "summary": Summary.model_json_schema(), "profile": SummaryProfile.model_json_schema(),
            "dead-letter": DeadLetter.model_json_schema(), "alert": Alert.model_json_schema()}


def cmd_schema(args: argparse.Namespace) -> int:
    schemas = json_schemas()
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        for name, schema in schemas.items():
            (out / f"{name}.schema.json").write_text(json.dumps(schema, indent=2) + "\n")
        print(f"wrote {len(schemas)} schemas to {out}", file=sys.stderr)
        return 0
    names = [args.name] if args.name else list(schemas)
    for name in names:
        if name not in schemas:
            print(f"unknown schema {name!r}; choose from {', '.join(schemas)}", file=sys.stderr)
            return 2
    print(json.dumps(schemas[names[0]] if len(names) == 1 else {n: schemas[n] for n in names}, indent=2))
    return 0


# -- analytics ---------------------------------------------------------------------------------
def _read_store(args: argparse.Namespace, allowed_directories=()):
    """The aggregates file opened read-only and confined: DuckDB refuses any other file, any
    extension and any settings change (only `allowed_directories` may be written: an export's)."""
    from replaylens.aggregates.store import AggregateStore
    s = _settings(args)
    return AggregateStore(args.db or s.duckdb_path, s.aggregate_window_days,
                          s.aggregate_retention_days, read_only=True, confined=True,
                          allowed_directories=allowed_directories)


def cmd_sql(args: argparse.Namespace) -> int:
    store = _read_store(args)
    try:
        columns, rows = store.query_select(args.query)
    finally:
        store.close()
    if args.format == "json":
        for row in rows:
            print(json.dumps(dict(zip(columns, row)), default=str))
    else:
        print("\t".join(columns))
        for row in rows:
            print("\t".join("" if v is None else str(v) for v in row))
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    store = _read_store(args, allowed_directories=[out])
    try:
        paths = store.export_parquet(args.out, args.tables or None)
    finally:
        store.close()
    for p in paths:
        print(p)
    return 0


def cmd_group_summary(args: argparse.Namespace) -> int:
    from replaylens.sinks.builtin import BuiltinSummarizer
    from replaylens.sinks.group import GroupFilter, summarize_group

    s = _settings(args)
    path = Path(args.sessions or s.data_dir / "closed-sessions.ndjson")
    if not path.exists():
        print(f"no closed sessions at {path}: run `replaylens run` first or pass --sessions", file=sys.stderr)
        return 2
    sessions = [orjson.loads(line) for line in path.open("rb") if line.strip()]
    filt = GroupFilter(start_ms=args.start_ms, end_ms=args.end_ms, url=args.url, user_id=args.user_id,
                       user_email=args.user_email,
                       issue_type=args.issue_type, limit=args.limit)
    summary = summarize_group(sessions, filt, BuiltinSummarizer.from_settings(s),
                              s.privacy_hash_salt)
    print(summary.model_dump_json(indent=2))
    return 0


def cmd_topics(args: argparse.Namespace) -> int:
    from replaylens.streams.topics import ensure_topics, topic_names

    s = _settings(args)
    created = asyncio.run(ensure_topics(s))
    for name in topic_names(s):
        print(f"{name}\t{'created' if name in created else 'exists'}")
    return 0


def cmd_config(args: argparse.Namespace) -> int:
    from replaylens.config.settings import settings_markdown

    if args.markdown:
        print(settings_markdown())
    else:
        print(_settings(args).model_dump_json(indent=2))
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="replaylens", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)

    r = sub.add_parser("run", help="run the whole pipeline in-process (no Kafka) on simulated or given events")
    r.add_argument("--sessions", type=int, default=2000, help="simulated sessions (default 2000)")
    r.add_argument("--seed", type=int, default=7)
    r.add_argument("--input", help="NDJSON file of events, or an rrweb recording (.json), instead of the simulator")
    r.add_argument("--data-dir", help="where the DuckDB file and NDJSON outputs go (default ./data)")
    r.add_argument("--examples", type=int, default=3, help="example summaries to print")
    r.add_argument("--fresh", action="store_true", help="start from empty outputs")
    r.add_argument("--quiet", action="store_true", help="no progress bar")
    r.add_argument("--spike", metavar="URL", help="simulate a frustration spike on this page (URL or path): watch it alert")
    r.set_defaults(func=cmd_run)

    sm = sub.add_parser("simulate", help="generate realistic sessions as NDJSON, or produce them to Kafka")
    sm.add_argument("--sessions", type=int, default=100)
    sm.add_argument("--seed", type=int, default=7)
    sm.add_argument("--kafka", action="store_true", help="produce to the events topic instead of stdout")
    sm.add_argument("--start-ms", type=int, help="epoch ms of the first visit (default: a fixed date; "
                    "pass the current time to feed a live pipeline)")
    sm.add_argument("--spike", metavar="URL", help="a frustration spike on this page (URL or path), three quarters into the run")
    sm.add_argument("--spike-start-ms", type=int, help="when the spike starts (epoch ms; default: three quarters into the run)")
    sm.add_argument("--topic")
    sm.add_argument("--bootstrap")
    sm.set_defaults(func=cmd_simulate)

    rr = sub.add_parser("ingest-rrweb", help="map an rrweb recording to contract events (NDJSON or Kafka)")
    rr.add_argument("recording")
    rr.add_argument("--session-id")
    rr.add_argument("--kafka", action="store_true")
    rr.add_argument("--bootstrap")
    rr.set_defaults(func=cmd_ingest_rrweb)

    w = sub.add_parser("worker", help="run a Faust worker on Kafka (settings from REPLAYLENS_* env)")
    w.add_argument("--bootstrap")
    w.add_argument("--data-dir")
    w.set_defaults(func=cmd_worker)

    a = sub.add_parser("api", help="run the HTTP API (REPLAYLENS_API_HOST/PORT; keys from REPLAYLENS_API_KEYS)")
    a.set_defaults(func=cmd_api)

    t = sub.add_parser("topics", help="create the pipeline's topics (same partition counts)")
    t.add_argument("--bootstrap")
    t.set_defaults(func=cmd_topics)

    cf = sub.add_parser("config", help="print the effective settings (or the README table)")
    cf.add_argument("--markdown", action="store_true")
    cf.set_defaults(func=cmd_config)

    sc = sub.add_parser("schema", help="print or write the JSON Schemas of the contract")
    sc.add_argument("name", nargs="?", help="event, closed-session, summary, profile, dead-letter, alert")
    sc.add_argument("--out", help="write every schema into this directory")
    sc.set_defaults(func=cmd_schema)

    h = sub.add_parser("health", help="check this machine's worker: exit 0 when its /health answers 200")
    h.add_argument("--url", help="default: http://127.0.0.1:<REPLAYLENS_METRICS_PORT>/health")
    h.add_argument("--timeout", type=float, default=3.0)
    h.set_defaults(func=cmd_health)

    q = sub.add_parser("sql", help="run a SQL query on the aggregates DuckDB file (read-only)")
    q.add_argument("query")
    q.add_argument("--db")
    q.add_argument("--data-dir")
    q.add_argument("--format", choices=("tsv", "json"), default="tsv")
    q.set_defaults(func=cmd_sql)

    e = sub.add_parser("export", help="export aggregate tables to Parquet")
    e.add_argument("--out", required=True)
    e.add_argument("--tables", nargs="*")
    e.add_argument("--db")
    e.add_argument("--data-dir")
    e.set_defaults(func=cmd_export)

    g = sub.add_parser("group-summary", help="summarize up to 100 closed sessions chosen by a filter")
    g.add_argument("--sessions", help="closed sessions NDJSON (default: the embedded run's)")
    g.add_argument("--data-dir")
    g.add_argument("--start-ms", type=int)
    g.add_argument("--end-ms", type=int)
    g.add_argument("--url")
    g.add_argument("--user-id")
    g.add_argument("--user-email", help="a user's sessions by email (matched through its keyed hash)")
    g.add_argument("--issue-type")
    g.add_argument("--limit", type=int, default=100)
    g.set_defaults(func=cmd_group_summary)
    return p


def main(argv: Optional[list[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        return args.func(args)
    except _user_errors() as exc:
        print(f"replaylens {args.command}: {exc}", file=sys.stderr)
        return 2


def _user_errors() -> tuple[type[BaseException], ...]:
    """Errors that are the input's or the environment's fault: a message, not a traceback."""
    import duckdb

    from replaylens.aggregates.store import StoreLockedError
    return (ValueError, FileNotFoundError, StoreLockedError, duckdb.Error)


if __name__ == "__main__":
    sys.exit(main())
