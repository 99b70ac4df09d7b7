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
    for key, path in report.paths.items():
        print(f"  {key:<15} {path}")
    for ex in report.examples:
        print()
        print(f"--- example summary: session {ex['session_id']} ({ex['summarizer']}) ---")
        print(ex["summary"])
