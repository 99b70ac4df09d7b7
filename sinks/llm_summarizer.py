"""The LLM summarizer: prompt -> chat completion -> validated, linked summary.

The model writes the prose (summary, key insights, or the profile's output_schema
object); the structured sections (potential issues, journey, outcome, comparisons) come
from the built-in summarizer's deterministic analysis of the same view, so they are
right even when the model is not. Cited event ids are mapped to time-coded replay links
here; ids the model invented are dropped, and an answer with too many of them is
invalid (retried, then the built-in summary is published, marked "builtin-fallback").
"""
from __future__ import annotations

import asyncio
import json
import logging
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

import jsonschema

from replaylens.config.privacy import DEFAULT_POLICY, PrivacyPolicy
from replaylens.config.settings import setting_default
from replaylens.schemas.profiles import SummaryProfile
from replaylens.schemas.sessions import window_id_of
from replaylens.schemas.summaries import Summary
from replaylens.sinks.builtin import Analysis, idempotency_key
from replaylens.sinks.describe import url_path
from replaylens.sinks.fact_check import SessionFacts, contradictions
from replaylens.sinks.links import LinkSettings, md_link
from replaylens.sinks.llm_client import ChatClient, InvalidAnswer, LlmUnavailable
from replaylens.sinks.profile_view import SessionView, build_view
from replaylens.sinks.prompt import CitedMoment, Prompt, build_prompt, messages_tokens
from replaylens.sinks.prompt_table import timecode
from replaylens.sinks.prompt_text import INSTRUCTION_PHRASES
from replaylens.sinks.token_budget import prompt_budget

log = logging.getLogger(__name__)

_ID = r"[eE]\d+"
# [clicked Pay](e12)  or  [clicked Pay]([e12])
_ANCHOR = re.compile(rf"\[([^\[\]]+)\]\(\s*\[?({_ID})\]?\s*\)")
# [clicked Pay][e12]
_ANCHOR_REF = re.compile(rf"\[([^\[\]]+)\]\[({_ID})\]")
# [e12]  [e12, e14]  (e12)  [E3; e4]
_GROUP = re.compile(rf"\s*[\[(]\s*({_ID}(?:\s*[,;]\s*{_ID})*)\s*[\])]")
# e12 on its own, not inside a word, path or query string
_BARE = re.compile(rf"(?<![\w/#?=&.\-])({_ID})\b")
_ALIAS = re.compile(r"\bP(\d+)\b")
_IDS_ONLY = re.compile(rf"^\s*{_ID}(?:\s*[,;]\s*{_ID})*\s*$")
_PLACEHOLDER = re.compile(r"\x00(\d+)\x00")
# Phrases of our own output instructions: an answer containing them parrots the prompt.
_ECHOES = INSTRUCTION_PHRASES
# Rebuilding a prompt that the server's tokenizer found over budget: this many times at most,
# each time aiming this far under the budget.
MAX_REFITS = 3
REFIT_MARGIN = 0.95
# How long aclose() waits for cancelled calls to unwind before closing the HTTP session.
ACLOSE_WAIT_S = 2.0
DEADLINE_CAUSE = "deadline"
# Why an LLM summary fell back, by the start of LlmUnavailable's reason (metrics label values).
_CAUSES = ((re.compile(r"timeout"), "timeout"), (re.compile(r"HTTP 429"), "rate-limited"),
           (re.compile(r"HTTP 5\d\d"), "server-error"), (re.compile(r"HTTP \d+"), "http-error"),
           (re.compile(r"invalid answer"), "invalid-answer"), (re.compile(r"connection error"), "connection-error"),
           (re.compile(r"malformed|response has no|empty answer"), "malformed-response"),
           (re.compile(r"output_schema is not a valid"), "invalid-profile-schema"))


def fallback_cause(reason: str) -> str:
    """A short, bounded label for why the LLM was not used (for counters, never free text)."""
    for pattern, cause in _CAUSES:
        if pattern.match(reason):
            return cause
    return "other"


class SummarizerClosed(RuntimeError):
    """aclose() cancelled this summary: nothing is published, the session is left for the next
    worker (its offset is not committed)."""


@dataclass
class LlmStats:
    """What the LLM summarizer did, for /metrics: calls made, answers used, fallbacks by cause."""

    calls: int = 0
    answers: int = 0
    fallbacks: Counter = field(default_factory=Counter)


@dataclass
class ParsedAnswer:
    summary: str
    key_insights: list[str]
    cited: list[str]
    invented: list[str]


class _Citations:
    """Rewrites citations in the model's strings into replay links, counting ids."""

    def __init__(self, prompt: Prompt, link_for: Callable[[CitedMoment], str], started_at: int,
                 policy: PrivacyPolicy) -> None:
        self.prompt = prompt
        self.policy = policy
        self.link_for = link_for
        self.started_at = started_at
        self.cited: set[str] = set()
        self.invented: set[str] = set()
        self._links: list[str] = []

    def _moment(self, short_id: str) -> Optional[CitedMoment]:
        short_id = short_id.lower()
        self.cited.add(short_id)
        moment = self.prompt.id_map.get(short_id)
        if moment is None:
            self.invented.add(short_id)
        return moment

    def _stash(self, markdown: str) -> str:
        # Links are parked behind placeholders so later patterns never see their URLs.
        self._links.append(markdown)
        return f"\x00{len(self._links) - 1}\x00"

    def _timecode_link(self, short_id: str) -> Optional[str]:
        moment = self._moment(short_id)
        if moment is None:
            return None
        label = timecode(moment.timestamp - self.started_at).removeprefix("t+")
        return self._stash(md_link(label, self.link_for(moment)))

    def _anchor(self, match: re.Match[str]) -> str:
        text, short_id = match.group(1), match.group(2)
        if _IDS_ONLY.match(text):  # "[e3][e4]" is two citations, not an anchor
            return self._group_ids(f"{text},{short_id}")
        moment = self._moment(short_id)
        return self._stash(md_link(text, self.link_for(moment))) if moment else text

    def _group_ids(self, ids: str) -> str:
        links = [self._timecode_link(i) for i in re.split(r"\s*[,;]\s*", ids.strip())]
        kept = [link for link in links if link]
        return " " + ", ".join(kept) if kept else ""

    def rewrite(self, text: str) -> str:
        text = self.policy.text(text) or ""  # before links: timestamps in URLs look like card numbers
        text = _ANCHOR.sub(self._anchor, text)
        text = _ANCHOR_REF.sub(self._anchor, text)
        text = _GROUP.sub(lambda m: self._group_ids(m.group(1)), text)
        text = _BARE.sub(lambda m: self._timecode_link(m.group(1)) or "", text)
        text = _ALIAS.sub(self._alias, text)
        text = re.sub(r"[ \t]{2,}", " ", text)
        return _PLACEHOLDER.sub(lambda m: self._links[int(m.group(1))], text).strip()

    def _alias(self, match: re.Match[str]) -> str:
        url = self.prompt.url_aliases.get(match.group(0))
        return f"`{self.policy.url(url)}`" if url else match.group(0)


def extract_json_object(content: str) -> dict[str, Any]:
    """The JSON object in an answer, tolerating ``` fences and prose around it."""
    text = content.strip()
    fenced = re.search(r"```(?:json)?\s*(.*?)```", text, re.DOTALL)
    if fenced:
        text = fenced.group(1).strip()
    start, end = text.find("{"), text.rfind("}")
    if start < 0 or end <= start:
        raise InvalidAnswer("answer is not a JSON object")
    try:
        value = json.loads(text[start:end + 1])
    except json.JSONDecodeError as exc:
        raise InvalidAnswer(f"answer is not valid JSON: {exc.msg} at char {exc.pos}") from None
    if not isinstance(value, dict):
        raise InvalidAnswer("answer is not a JSON object")
    return value


def _rewrite_strings(value: Any, rewrite: Callable[[str], str]) -> Any:
    if isinstance(value, str):
        return rewrite(value)
    if isinstance(value, list):
        return [_rewrite_strings(v, rewrite) for v in value]
    if isinstance(value, dict):
        return {k: _rewrite_strings(v, rewrite) for k, v in value.items()}
    return value


def _insights(value: Any) -> list[str]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list):
        return []
    return [v.strip() for v in value if isinstance(v, str) and v.strip(" .…")]


def parse_answer(content: str, prompt: Prompt, *, output_schema: Optional[dict[str, Any]],
                 link_for: Callable[[CitedMoment], str], started_at: int,
                 max_invented_share: float, policy: PrivacyPolicy = DEFAULT_POLICY,
                 facts: Optional[SessionFacts] = None) -> ParsedAnswer:
    """Validate one answer and map its citations; raises InvalidAnswer when unusable.

    With `facts`, an answer stating something the session contradicts (a duration, a count of
    pages or errors, a page, the outcome) is invalid too."""
    raw = extract_json_object(content)
    if any(echo in content for echo in _ECHOES):
        raise InvalidAnswer("answer repeats the output instructions instead of summarizing")
    citations = _Citations(prompt, link_for, started_at, policy)
    answer = _rewrite_strings(raw, citations.rewrite)
    if citations.cited:
        share = len(citations.invented) / len(citations.cited)
        if share > max_invented_share:
            raise InvalidAnswer(
                f"{len(citations.invented)} of {len(citations.cited)} cited event ids are not in the log")
    if output_schema is not None:
        try:
            jsonschema.validate(answer, output_schema)
        except jsonschema.ValidationError as exc:
            where = "/".join(str(p) for p in exc.absolute_path) or "(root)"
            raise InvalidAnswer(f"answer breaks the output_schema at {where}: {exc.message}") from None
        summary = json.dumps(answer, ensure_ascii=False)
    else:
        summary = answer.get("summary")
        if not isinstance(summary, str) or not summary.strip():
            raise InvalidAnswer('answer has no "summary" text')
    insights = _insights(answer.get("key_insights"))
    if facts is not None:
        wrong = contradictions("\n".join([summary] + insights), facts)
        if wrong:
            raise InvalidAnswer("answer contradicts the session: " + "; ".join(wrong))
    return ParsedAnswer(summary=summary, key_insights=insights,
                        cited=sorted(citations.cited), invented=sorted(citations.invented))


def _or_default(value: Any, setting: str) -> Any:
    return value if value is not None else setting_default(setting)


def session_facts(view: SessionView, analysis: Analysis, policy: PrivacyPolicy) -> SessionFacts:
    """What the fact check holds an answer to, from the deterministic analysis."""
    paths = {url_path(policy.url(p["url"])) for p in view.pages if p.get("url")}
    paths |= {url_path(policy.url(e.get("url"))) for e in view.events if e.get("url")}
    paths |= {url_path(policy.url((e.get("error") or {}).get("request_url")))
              for e in view.events if (e.get("error") or {}).get("request_url")}
    distinct = len({step.url for step in analysis.journey})
    errors = sum(1 for e in view.events if e.get("type") in ("network-error", "console-error"))
    return SessionFacts(duration_ms=view.duration_ms, page_views=len(analysis.journey),
                        distinct_pages=distinct,
                        error_issues=sum(1 for i in analysis.potential_issues if i.type == "error"),
                        error_events=errors, outcome=analysis.outcome.status,
                        paths=frozenset(p for p in paths if p))


class LlmSummarizer:
    def __init__(self, client: ChatClient, builtin: Any, link_template: Optional[str] = None,
                 replay_base_url: Optional[str] = None, *,
                 max_prompt_tokens: Optional[int] = None, max_output_tokens: Optional[int] = None,
                 context_tokens: Optional[int] = None, max_invented_share: Optional[float] = None,
                 project: Optional[dict[str, Any]] = None, policy: Optional[PrivacyPolicy] = None,
                 deadline_s: Optional[float] = None) -> None:
        """Limits left out take their Settings defaults (one default for each, in Settings)."""
        self.client = client
        # The hard limit on one summary's LLM part, from the call timeout and retries: a hung
        # or slow server delays that summary by no more, and the others not at all.
        self.deadline_s = client.overall_deadline_s() if deadline_s is None else deadline_s
        self.stats = LlmStats()
        self._in_flight: set[asyncio.Task] = set()
        self._closing = False
        self.builtin = builtin
        self.links = LinkSettings(link_template, replay_base_url)
        self.max_output_tokens = _or_default(max_output_tokens, "llm_max_output_tokens")
        self.budget = prompt_budget(_or_default(max_prompt_tokens, "llm_max_prompt_tokens"),
                                    _or_default(context_tokens, "llm_context_tokens"), self.max_output_tokens)
        self.max_invented_share = _or_default(max_invented_share, "llm_max_invented_ids")
        self.project = project or {}
        self.policy = policy or getattr(builtin, "policy", DEFAULT_POLICY)

    async def summarize(self, session: dict[str, Any], profile: SummaryProfile, *,
                        generated_at: int) -> Summary:
        """The LLM summary, or the built-in one marked "builtin-fallback" when the LLM fails."""
        try:
            base = self.builtin.summarize(session, profile, generated_at=generated_at)
        except Exception as exc:  # noqa: BLE001 - a bad session must not stop the stream
            log.exception("built-in summary failed for session %s", session.get("session_id"))
            return failed_summary(session, profile, generated_at, f"builtin summarizer failed: {exc}",
                                  self.policy)
        try:
            parsed, model = await self._ask_in_time(session, profile)
        except LlmUnavailable as exc:
            return self._fallback(base, session, profile, fallback_cause(exc.reason), exc.reason)
        except TimeoutError:
            return self._fallback(base, session, profile, DEADLINE_CAUSE,
                                  f"no valid LLM answer within the {self.deadline_s:.1f} s deadline")
        except SummarizerClosed:
            raise
        except Exception as exc:  # noqa: BLE001 - a bug here must not lose the summary
            log.error("LLM summarizer failed for session %s: %s", session.get("session_id"),
                      type(exc).__name__)
            return self._fallback(base, session, profile, "internal-error",
                                  f"internal error: {type(exc).__name__}")
        self.stats.answers += 1
        return base.model_copy(update={
            "status": "READY",  # even when the built-in one could not fill the schema
            "summarizer": "llm",
            "model": model,
            "summary": parsed.summary,
            "key_insights": parsed.key_insights or base.key_insights,
            "fallback_reason": None,
            "error": None,
        })

    async def fitted_prompt(self, view: SessionView, profile: SummaryProfile) -> Prompt:
        """The prompt, within the budget as the served model's tokenizer counts it (when the
        server has one; else as the safe estimate counts it)."""
        budget = self.budget
        for _ in range(MAX_REFITS):
            prompt = build_prompt(view, profile, self.project, budget, self.policy)
            counted = await self.client.count_tokens(prompt.messages)
            used = counted if counted is not None else prompt.estimated_tokens
            prompt.estimated_tokens = used
            if used <= self.budget:
                return prompt
            budget = int(budget * self.budget / used * REFIT_MARGIN)
        raise LlmUnavailable(f"prompt of {used} tokens does not fit the budget of {self.budget} "
                             f"(context window minus {self.max_output_tokens} output tokens)")

    def _fallback(self, base: Summary, session: dict[str, Any], profile: SummaryProfile, cause: str,
                  reason: str) -> Summary:
        self.stats.fallbacks[cause] += 1
        log.warning("LLM summary of %s with profile %s fell back to the built-in one (%s): %s",
                    session.get("session_id"), profile.id, cause, reason)
        return base.model_copy(update={"summarizer": "builtin-fallback", "fallback_reason": reason})

    async def _ask_in_time(self, session: dict[str, Any], profile: SummaryProfile) -> tuple[ParsedAnswer, str]:
        """`_ask` within the deadline (queueing for a call slot included), as a task that
        aclose() can cancel. TimeoutError past the deadline; SummarizerClosed when closed."""
        if self._closing:
            raise SummarizerClosed("the LLM summarizer is closed")

        async def bounded() -> tuple[ParsedAnswer, str]:
            async with asyncio.timeout(self.deadline_s):
                return await self._ask(session, profile)

        self.stats.calls += 1
        task = asyncio.ensure_future(bounded())
        self._in_flight.add(task)
        task.add_done_callback(self._in_flight.discard)
        try:
            return await task
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if self._closing and task.cancelled() and not (current and current.cancelling()):
                raise SummarizerClosed("cancelled by aclose()") from None
            raise

    async def aclose(self, wait_s: float = ACLOSE_WAIT_S) -> None:
        """Cancel every call in flight (their summarize() raises SummarizerClosed, so nothing is
        published for them) and close the HTTP client. Returns within about `wait_s`."""
        self._closing = True
        tasks = list(self._in_flight)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=wait_s)
        await self.client.close()

    async def _ask(self, session: dict[str, Any], profile: SummaryProfile) -> tuple[ParsedAnswer, str]:
        schema = profile.llm.output_schema
        if schema is not None:
            try:
                jsonschema.validators.validator_for(schema).check_schema(schema)
            except jsonschema.SchemaError as exc:
                raise LlmUnavailable(f"profile {profile.id} output_schema is not a valid JSON Schema: "
                                     f"{exc.message}") from None
        view = build_view(session, profile)
        facts = session_facts(view, self.builtin.analyze(view), self.policy)
        prompt = await self.fitted_prompt(view, profile)
        log.debug("prompt for %s: %d tokens, %d ids, omitted: %s", view.session_id,
                  prompt.estimated_tokens, len(prompt.id_map), prompt.omitted)
        link = self.links.for_session(view.session_id)

        def validate(content: str) -> ParsedAnswer:
            return parse_answer(content, prompt, output_schema=schema,
                                link_for=lambda moment: link(moment.timestamp),
                                started_at=view.started_at, max_invented_share=self.max_invented_share,
                                policy=self.policy, facts=facts)

        parsed, model, _attempts = await self.client.complete(
            prompt.messages, validate=validate, temperature=profile.llm.temperature,
            max_tokens=self.max_output_tokens, json_mode=prompt.json_mode,
            json_schema=prompt.answer_schema, model=profile.llm.model)
        return parsed, model


def failed_summary(session: dict[str, Any], profile: SummaryProfile, generated_at: int,
                   error: str, policy: PrivacyPolicy = DEFAULT_POLICY) -> Summary:
    """A FAILED summary: published so consumers see the session was not summarized."""
    started_at = int(session.get("started_at") or 0)
    window_id = window_id_of(session)
    return Summary(
        idempotency_key=idempotency_key(window_id, profile),
        session_id=str(session.get("session_id")),
        window_id=window_id,
        part=int(session.get("part") or 1),
        profile_id=profile.id,
        status="FAILED",
        summarizer="builtin",
        generated_at=generated_at,
        started_at=started_at,
        ended_at=int(session.get("ended_at") or started_at),
        summary="",
        error=policy.text(error),
    )
