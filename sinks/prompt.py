"""The chat prompt for one session view (pure: no I/O, no HTTP).

Assembles the prose (`prompt_text.py`) around the session log (`prompt_table.py`) and fits it
into the token budget (`token_budget.py`).

Output contract (parsed by `sinks/llm_summarizer.py`): the model always answers with ONE JSON
object. Without an output_schema that object is {"summary": markdown, "key_insights": [strings]};
with one, it is an object valid against the profile's schema. Moments are cited as [e12] or
[short phrase](e12).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Optional

from replaylens.config.privacy import DEFAULT_POLICY, PrivacyPolicy
from replaylens.config.wording import human_duration
from replaylens.sinks.prompt_table import (MAX_URL_CHARS, Aliases, Cells, context_lines, event_rows,
                                           page_lines, project_lines, signal_lines)
from replaylens.sinks.prompt_text import SYSTEM_PROMPT, answer_schema, output_instructions
from replaylens.sinks.token_budget import TOKENS_PER_MESSAGE, Counter, estimate_tokens, fit_rows

if TYPE_CHECKING:
    from replaylens.schemas.profiles import SummaryProfile
    from replaylens.sinks.profile_view import SessionView

# Room kept in the fixed part's estimate for the "… N events omitted" line.
OMITTED_LINE_RESERVE = "x" * 120


@dataclass(frozen=True)
class CitedMoment:
    """What a short event id stands for: the link target of a citation."""

    timestamp: int
    event_id: Optional[str]
    url: Optional[str]


@dataclass
class Prompt:
    messages: list[dict[str, str]]
    id_map: dict[str, CitedMoment]
    url_aliases: dict[str, str]
    omitted: list[str] = field(default_factory=list)
    estimated_tokens: int = 0
    json_mode: bool = True
    answer_schema: Optional[dict[str, Any]] = None


def messages_tokens(messages: list[dict[str, str]], count: Counter = estimate_tokens) -> int:
    return sum(count(m["content"]) + TOKENS_PER_MESSAGE for m in messages)


def build_prompt(view: "SessionView", profile: "SummaryProfile", project: Optional[dict[str, Any]],
                 max_tokens: int, policy: PrivacyPolicy = DEFAULT_POLICY) -> Prompt:
    """The chat messages for `view`, fitted to at most `max_tokens` prompt tokens (estimated)."""
    cells = Cells(policy)
    aliases = Aliases()
    # Pages first so P1.. follow the journey; events may add aliases for URLs without a visit.
    pages = page_lines(view, aliases)
    rows = event_rows(view, aliases, cells)
    ids_by_event = {r.event["event_id"]: r.short_id for r in rows if r.event.get("event_id")}
    signals = signal_lines(view, aliases, ids_by_event, cells)

    def render(event_lines: list[str], omitted: list[str]) -> str:
        return _user_message(view, profile, project or {}, aliases, pages, signals, event_lines,
                             omitted, cells)

    fixed = messages_tokens([{"content": SYSTEM_PROMPT}, {"content": render([], [OMITTED_LINE_RESERVE])}])
    kept, omitted = fit_rows(rows, max(0, max_tokens - fixed))
    user = render([r.line for r in kept], omitted)
    id_map = {
        r.short_id: CitedMoment(int(r.event["timestamp"]), r.event.get("event_id"), r.event.get("url"))
        for r in kept
    }
    messages = [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": user}]
    return Prompt(
        messages=messages, id_map=id_map,
        url_aliases={alias: url for url, alias in aliases.by_url.items()},
        omitted=omitted, estimated_tokens=messages_tokens(messages),
        answer_schema=answer_schema(profile),
    )


def _user_message(view: "SessionView", profile: "SummaryProfile", project: dict[str, Any],
                  aliases: Aliases, pages: list[str], signals: list[str],
                  event_lines: list[str], omitted: list[str], cells: Cells) -> str:
    parts: list[str] = []
    if profile.llm.pre_prompt:
        parts.append(profile.llm.pre_prompt.strip())
    projects = project_lines(project, cells)
    if projects:
        parts.append("## Project\n" + "\n".join(projects))
    session_lines = [
        f"Session duration: {human_duration(view.duration_ms)}; "
        f"events shown: {len(event_lines)} of {view.total_events}"
        + (f"; part {view.part}" if view.part > 1 else "")
    ]
    session_lines += context_lines(view.context, cells)
    parts.append("## Session\n" + "\n".join(session_lines))
    # Aliases are complete only after events were rendered; list every alias used.
    alias_lines = [f"{alias} = {cells.url(url, MAX_URL_CHARS)}" for url, alias in aliases.by_url.items()]
    if alias_lines:
        parts.append("## URLs\n" + "\n".join(alias_lines))
    if pages:
        parts.append("## Pages\npage|entered|time on page|events\n" + "\n".join(pages))
    if view.comparisons:
        parts.append("## Compared with other sessions\n" + "\n".join(
            f"- {cells.cell(c.get('text', ''), MAX_URL_CHARS)}" for c in view.comparisons))
    if signals:
        parts.append("## Signals\ntype|time|page|event|count|target/detail\n" + "\n".join(signals))
    events = "## Events\nid|time|page|type|target/detail\n" + "\n".join(event_lines)
    if omitted:
        events += "\n… " + "; ".join(omitted) + " (to fit the budget)"
    parts.append(events)
    if profile.llm.post_prompt:
        parts.append(profile.llm.post_prompt.strip())
    parts.append(output_instructions(profile))
    return "\n\n".join(parts)
