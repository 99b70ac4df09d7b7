"""The short report `replaylens run` prints at the end."""
from __future__ import annotations

from typing import Any

from replaylens.config.settings import Settings


def _top_pages(settings: Settings, limit: int = 5) -> list[tuple]:
    from replaylens.aggregates.store import AggregateStore

    store = AggregateStore(settings.duckdb_path, settings.aggregate_window_days,
                           settings.aggregate_retention_days, read_only=True)
    try:
        _cols, rows = store.query(
            "SELECT url, visits, round(bounce_rate, 3), round(exit_rate, 3), lcp_p75 "
            "FROM url_stats WHERE url <> '*' ORDER BY visits DESC LIMIT ?", [limit])
    finally:
        store.close()
    return rows


def print_report(report: Any, settings: Settings) -> None:
    c = report.counters
    print()
    print("replaylens embedded run")
    print(f"  events          {report.events:,} in {report.seconds:.1f} s ({report.events_per_s:,.0f} events/s)")
    print(f"  accepted        {c.get('accepted', 0):,}   duplicates {c.get('duplicates', 0):,}   "
          f"late {c.get('late', 0):,}   rejected {c.get('rejected', 0):,}")
    if report.dead_letters:
        print("  dead letters    " + ", ".join(f"{k} {v}" for k, v in report.dead_letters.most_common()))
    print(f"  sessions closed {c.get('sessions_closed', 0):,}")
    print(f"  summaries       {report.summaries:,} (" +
          ", ".join(f"{k} {v}" for k, v in report.summarizers.most_common()) + ")")
    print("  outcomes        " + ", ".join(f"{k} {v}" for k, v in report.outcomes.most_common()))
    if report.issues:
        print("  issues found    " + ", ".join(f"{k} {v}" for k, v in report.issues.most_common()))
    rows = _top_pages(settings)
    if rows:
        print("  busiest pages (visits, bounce rate, exit rate, LCP p75 ms):")
        for url, visits, bounce, exit_rate, lcp in rows:
            lcp_text = f"{lcp:.0f}" if lcp is not None else "-"
            print(f"    {url:<48} {visits:>6}  {bounce if bounce is not None else '-':>6}  "
                  f"{exit_rate if exit_rate is not None else '-':>6}  {lcp_text:>6}")
    _print_alerts(getattr(report, "alerts", None))
    for key, path in report.paths.items():
        print(f"  {key:<15} {path}")
    for ex in report.examples:
        print()
        print(f"--- example summary: session {ex['session_id']} ({ex['summarizer']}) ---")
        print(ex["summary"])


MAX_ALERTS_SHOWN = 8


def _print_alerts(alerts: Any) -> None:
    """Alerts of the run (issue 14): their headlines, each with its worst session's link."""
    if alerts is None:
        return
    if not alerts:
        print("  alerts          none")
        return
    kinds: dict[str, int] = {}
    for a in alerts:
        kinds[a["type"]] = kinds.get(a["type"], 0) + 1
    print(f"  alerts          {len(alerts)} (" + ", ".join(f"{k} {v}" for k, v in kinds.items()) + ")")
    for a in alerts[:MAX_ALERTS_SHOWN]:
        print(f"    {a['text'].splitlines()[0]}")
        if a.get("sessions"):
            print(f"      worst session: {a['sessions'][0]['link']}")
    if len(alerts) > MAX_ALERTS_SHOWN:
        print(f"    ... {len(alerts) - MAX_ALERTS_SHOWN} more in alerts.ndjson")
