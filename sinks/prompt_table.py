"""The session log of the LLM prompt as compact tables (pure).

Layout follows PostHog's open-source session-summary prompt: instead of raw JSON the model gets
tables, short event ids (e1..eN) and URL aliases (P1..Pn), which cost a fraction of the tokens.
Everything the visitor typed or the page showed is fenced in «…». Every text passes through the
privacy policy here, even though values were masked at ingest.
"""
from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, Optional

from replaylens.config.privacy import PrivacyPolicy
from replaylens.config.wording import clock, human_duration
from replaylens.schemas.events import ERROR_TYPES, FRUSTRATION_TYPES
from replaylens.sinks.prompt_text import FENCE_CLOSE, FENCE_OPEN
from replaylens.sinks.token_budget import LOW_VALUE_TYPES, Row

if TYPE_CHECKING:
    from replaylens.sinks.profile_view import SessionView

MAX_FENCED_CHARS = 80
MAX_SELECTOR_CHARS = 60
MAX_CONTEXT_CHARS = 400
MAX_URL_CHARS = 200
PROTECTED_TYPES = ERROR_TYPES | FRUSTRATION_TYPES


def timecode(ms: int) -> str:
    """t+mm:ss relative time (t+h:mm:ss past an hour)."""
    return "t+" + clock(ms, pad_minutes=True)


class Cells:
    """Masked table cells and fences, under one privacy policy."""

    def __init__(self, policy: PrivacyPolicy) -> None:
        self.policy = policy

    def cell(self, text: Any, limit: int) -> str:
        """Masked, single-line, pipe-free text cut to `limit` characters."""
        clean = self.policy.text(str(text)) or ""
        clean = " ".join(clean.split()).replace("|", "/")
        return clean if len(clean) <= limit else clean[: limit - 1] + "…"

    def url(self, url: Any, limit: int = MAX_URL_CHARS) -> str:
        return self.cell(self.policy.url(str(url)) or "", limit)

    def fence(self, text: Any, limit: int = MAX_FENCED_CHARS) -> str:
        """Untrusted text as data: masked, cut, and inside «…» (fence marks in it removed)."""
        clean = self.cell(text, limit).replace(FENCE_OPEN, "").replace(FENCE_CLOSE, "")
        return f"{FENCE_OPEN}{clean}{FENCE_CLOSE}"


class Aliases:
    """URL -> P1, P2, ... in order of first appearance."""

    def __init__(self) -> None:
        self.by_url: dict[str, str] = {}

    def alias(self, url: Optional[str]) -> str:
        if not url:
            return "-"
        if url not in self.by_url:
            self.by_url[url] = f"P{len(self.by_url) + 1}"
        return self.by_url[url]


def _target_text(event: dict[str, Any], cells: Cells) -> str:
    target = event.get("target") or {}
    parts = []
    if target.get("selector"):
        parts.append(cells.cell(target["selector"], MAX_SELECTOR_CHARS))
    if target.get("text"):
        parts.append(cells.fence(target["text"]))
    return " ".join(parts)


def _error_text(event: dict[str, Any], cells: Cells) -> str:
    error = event.get("error") or {}
    parts = [str(error[k]) for k in ("method", "status") if error.get(k) is not None]
    if error.get("request_url"):
        parts.append(cells.fence(cells.policy.url(error["request_url"])))
    if error.get("message"):
        parts.append(cells.fence(error["message"]))
    return " ".join(parts)


def _metrics_text(event: dict[str, Any]) -> str:
    metrics = event.get("metrics") or {}
    units = {"cls": ""}
    return " ".join(
        f"{k}={round(v, 3) if k == 'cls' else round(v)}{units.get(k, 'ms')}"
        for k, v in metrics.items() if isinstance(v, (int, float))
    )


def _detail(event: dict[str, Any], aliases: Aliases, cells: Cells) -> str:
    etype = event.get("type")
    parts = []
    if etype == "navigate":
        parts.append(f"-> {aliases.alias(event.get('url'))}")
    target = _target_text(event, cells)
    if target:
        parts.append(target)
    if event.get("value") is not None:
        parts.append(f"value={cells.fence(event['value'])}")
    if event.get("error"):
        parts.append(_error_text(event, cells))
    if event.get("metrics"):
        parts.append(_metrics_text(event))
    if etype == "custom":
        parts.append(cells.fence(event.get("name") or ""))
        if event.get("properties"):
            props = cells.policy.properties(event["properties"])
            parts.append(cells.fence(json.dumps(props, default=str, separators=(",", ":"))))
    return " ".join(p for p in parts if p)


def _collapse_scroll_runs(events: list[dict[str, Any]]) -> list[tuple[dict[str, Any], int, int]]:
    """(event, run length, last timestamp): consecutive scrolls on one page become one row."""
    out: list[tuple[dict[str, Any], int, int]] = []
    for event in events:
        if out and event.get("type") == "scroll":
            first, count, _ = out[-1]
            if first.get("type") == "scroll" and first.get("url") == event.get("url"):
                out[-1] = (first, count + 1, event["timestamp"])
                continue
        out.append((event, 1, event["timestamp"]))
    return out


def event_rows(view: "SessionView", aliases: Aliases, cells: Cells) -> list[Row]:
    signal_event_ids = {s.get("event_id") for s in view.signals if s.get("event_id")}
    runs = _collapse_scroll_runs(view.events)
    rows = []
    for index, (event, count, last_ts) in enumerate(runs, start=1):
        short_id = f"e{index}"
        etype = event.get("type") or "?"
        detail = _detail(event, aliases, cells)
        if count > 1:
            detail = f"x{count} until {timecode(last_ts - view.started_at)} {detail}".strip()
        line = (f"{short_id}|{timecode(event['timestamp'] - view.started_at)}|"
                f"{aliases.alias(event.get('url'))}|{etype}|{detail}")
        protected = (etype in PROTECTED_TYPES or event.get("event_id") in signal_event_ids
                     or index in (1, len(runs)))
        rows.append(Row(short_id, event, line, protected, etype in LOW_VALUE_TYPES, count))
    return rows


def project_lines(project: dict[str, Any], cells: Cells) -> list[str]:
    labels = (("site_name", "Site"), ("site_url", "URL"), ("industry", "Industry"))
    return [f"{label}: {cells.cell(project[key], MAX_URL_CHARS)}" for key, label in labels if project.get(key)]


def context_lines(context: dict[str, Any], cells: Cells) -> list[str]:
    lines = []
    for name, value in context.items():
        if value:
            value = cells.policy.context_for_output(name, value)
            text = json.dumps(value, default=str, ensure_ascii=False, separators=(",", ":"))
            lines.append(f"{name}: {cells.fence(text, MAX_CONTEXT_CHARS)}")
    return lines


def page_lines(view: "SessionView", aliases: Aliases) -> list[str]:
    lines = []
    last = len(view.pages) - 1
    for i, page in enumerate(view.pages):
        exit_mark = " (exit)" if i == last else ""
        lines.append(
            f"{aliases.alias(page.get('url'))}|{timecode(page['entered_at'] - view.started_at)}|"
            f"{human_duration(page.get('time_on_page_ms') or 0)}|{page.get('event_count', 0)}{exit_mark}"
        )
    return lines


def signal_lines(view: "SessionView", aliases: Aliases, ids_by_event: dict[str, str], cells: Cells) -> list[str]:
    lines = []
    for signal in view.signals:
        ref = ids_by_event.get(signal.get("event_id") or "", "-")
        what = " ".join(p for p in (
            cells.cell(signal["selector"], MAX_SELECTOR_CHARS) if signal.get("selector") else "",
            cells.fence(signal["text"]) if signal.get("text") else "",
            cells.fence(signal["detail"]) if signal.get("detail") else "",
        ) if p)
        lines.append(f"{signal.get('type')}|{timecode(signal['timestamp'] - view.started_at)}|"
                     f"{aliases.alias(signal.get('url'))}|{ref}|x{signal.get('count', 1)}|{what}")
    return lines
