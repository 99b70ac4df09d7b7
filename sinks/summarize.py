"""Summarize every closed session with each streaming profile (LLM or built-in).

Triage decides per call whether the LLM is worth it; the rest get the built-in summary.
The caller publishes the returned summaries (Kafka agent, or NDJSON in the embedded run),
keyed by session id; `Summary.idempotency_key` is the same for a re-delivered session.
"""
from __future__ import annotations

import asyncio
import logging
import time
import typing
from typing import Any, Callable, Optional, TypedDict

import aiohttp
import msgspec
import orjson

from pydantic import BaseModel

from replaylens.schemas.events import Event
from replaylens.schemas.profiles import CONTEXT_ELEMENTS, SummaryProfile
from replaylens.schemas.summaries import Summary
from replaylens.sinks.llm_client import ChatClient
from replaylens.sinks.llm_summarizer import LlmSummarizer, failed_summary
from replaylens.sinks.triage import Triage, session_has_issues

log = logging.getLogger(__name__)

# What the built-in summarizer reads of a closed session. Each event carries its own copy of the
# session's context (user, org, device, location: ~40% of a session's event bytes) and session id,
# which the built-in summarizer never reads (it reads the session's `context` and `session_id`),
# and it reads events' other fields only by their contract names: decoding just those skips
# allocating the rest.
_UNREAD_EVENT_FIELDS = frozenset(CONTEXT_ELEMENTS) | {"session_id"}
_BUILTIN_EVENT_FIELDS = tuple(f for f in Event.model_fields if f not in _UNREAD_EVENT_FIELDS)
_CLOSED_SESSION_FIELDS = ("session_id", "window_id", "part", "previous_window_id", "close_reason",
                          "started_at", "ended_at", "duration_ms", "event_count", "signals", "pages",
                          "context", "comparisons", "automated")
_BuiltinEvent = TypedDict("_BuiltinEvent", {f: Any for f in _BUILTIN_EVENT_FIELDS}, total=False)  # type: ignore[misc]
_BuiltinSession = TypedDict("_BuiltinSession", {"events": list[_BuiltinEvent],  # type: ignore[misc]
                                                **{f: Any for f in _CLOSED_SESSION_FIELDS}}, total=False)
_BUILTIN_DECODER = msgspec.json.Decoder(_BuiltinSession)


def decode_for_builtin(value: bytes) -> dict[str, Any]:
    """A closed session as the built-in summarizer needs it (plain dicts, as `orjson.loads` gives,
    without what it never reads): the same summaries, at about 2/3 of the decoding cost. Anything
    not of the expected shape (not JSON, events not a list of objects...) is decoded whole by
    orjson instead, so it fails, or is summarized, exactly as before."""
    try:
        return _BUILTIN_DECODER.decode(value)
    except (msgspec.MsgspecError, TypeError):  # (TypeError: no bytes at all, e.g. a tombstone)
        return orjson.loads(value)


# -- encoding summaries ------------------------------------------------------------------------------
def _nested_models(model: type[BaseModel]) -> list[type[BaseModel]]:
    """The model and every model its fields hold (in lists, optionals...), each once."""
    found: list[type[BaseModel]] = []
    todo = [model]
    while todo:
        cls = todo.pop()
        if cls in found:
            continue
        found.append(cls)
        for info in cls.model_fields.values():
            stack = [info.annotation]
            while stack:
                tp = stack.pop()
                if isinstance(tp, type) and issubclass(tp, BaseModel):
                    todo.append(tp)
                stack += typing.get_args(tp)
    return found


def _json_is_its_dict(cls: type[BaseModel]) -> bool:
    """Whether pydantic writes this model's JSON as its `__dict__`, field by field in order: no
    alias, exclusion, extra fields, custom or computed serializers."""
    decorators = cls.__pydantic_decorators__
    return (cls.model_config.get("extra") != "allow" and not cls.model_computed_fields
            and not decorators.field_serializers and not decorators.model_serializers
            and all(f.alias is None and f.serialization_alias is None and not f.exclude
                    for f in cls.model_fields.values()))


# Summary and the models inside it whose JSON orjson writes as pydantic does, from their fields.
_PLAIN_MODELS = frozenset(cls for cls in _nested_models(Summary) if _json_is_its_dict(cls))


def _fields_of(obj: Any) -> dict[str, Any]:
    """orjson's `default` for the models of a summary: their fields (anything else: TypeError)."""
    if type(obj) in _PLAIN_MODELS:
        return obj.__dict__
    raise TypeError(f"{type(obj).__name__} is not a plain summary model")


def encode_summary(summary: Summary) -> bytes:
    """A validated summary's JSON, byte for byte pydantic's (`model_dump_json`), at about half
    its cost (~16 µs against ~30 µs for an 8 KB summary holding ~20 comparisons): orjson writes
    each model's fields as pydantic does (field order, number and string formats, NaN and
    infinities as null) as long as every value has its field's type, which validation ensures
    (the summarizers build every model by validating it; a model made with `model_construct`
    could hold an int in a float field, 3 where pydantic writes 3.0: tests/test_summary_encoding.py
    compares both over sessions with such values). What orjson refuses (a model of another kind,
    a non-string key, an integer beyond 64 bits) pydantic writes instead."""
    try:
        return orjson.dumps(summary, default=_fields_of)
    except TypeError:  # (orjson.JSONEncodeError is one)
        return summary.__pydantic_serializer__.to_json(summary)


class SummarizerSink:
    def __init__(self, settings: Any, profiles: list[SummaryProfile], builtin: Any,
                 llm: Optional[LlmSummarizer] = None, triage: Optional[Triage] = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.settings = settings
        self.profiles = [p for p in profiles if p.streaming]
        self.builtin = builtin
        self.llm = llm if settings.summarizer == "llm" else None
        self.triage = triage or Triage.from_settings(settings)
        self.clock = clock

    @property
    def builtin_only(self) -> bool:
        """Every summary comes from the built-in summarizer: no call can wait on the network, so
        a caller may summarize whole batches in one synchronous pass (`summarize_builtin`)."""
        return self.llm is None

    def summarize_builtin(self, session: dict[str, Any]) -> list[Summary]:
        """`summarize_closed` without the event loop, when `builtin_only`: one summary per
        streaming profile, in profile order; the same summaries for the same session and clock."""
        generated_at = int(self.clock() * 1000)
        return [self._builtin_now(session, profile, generated_at) for profile in self.profiles]

    async def summarize_closed(self, session: dict[str, Any]) -> list[Summary]:
        """One summary per streaming profile, in profile order."""
        if self.llm is None:  # nothing to await: no task or future per profile
            return self.summarize_builtin(session)
        generated_at = int(self.clock() * 1000)
        has_issues = session_has_issues(session)
        jobs = []
        for profile in self.profiles:
            use_llm, reason = self.triage.should_use_llm(session, has_issues)
            log.debug("session %s profile %s: %s (%s)", session.get("session_id"), profile.id,
                      "LLM" if use_llm else "built-in", reason)
            if use_llm:
                jobs.append(self.llm.summarize(session, profile, generated_at=generated_at))
            else:
                jobs.append(self._builtin(session, profile, generated_at))
        return list(await asyncio.gather(*jobs))

    async def aclose(self) -> None:
        """Cancel LLM calls in flight (their sessions get no summary: SummarizerClosed) and close
        the LLM client. Bounded in time (LlmSummarizer.aclose)."""
        if self.llm is not None:
            await self.llm.aclose()

    async def _builtin(self, session: dict[str, Any], profile: SummaryProfile,
                       generated_at: int) -> Summary:
        return self._builtin_now(session, profile, generated_at)

    def _builtin_now(self, session: dict[str, Any], profile: SummaryProfile, generated_at: int) -> Summary:
        try:
            return self.builtin.summarize(session, profile, generated_at=generated_at)
        except Exception as exc:  # noqa: BLE001 - one bad session must not stop the stream
            log.exception("built-in summary failed for session %s", session.get("session_id"))
            return failed_summary(session, profile, generated_at, f"builtin summarizer failed: {exc}",
                                  self.builtin.policy)


def project_from_settings(settings: Any) -> dict[str, str]:
    return {"site_name": settings.site_name, "site_url": settings.site_url,
            "industry": settings.site_industry}


def chat_client_from_settings(settings: Any, session: Optional[aiohttp.ClientSession] = None) -> ChatClient:
    return ChatClient(settings.llm_base_url, settings.llm_api_key, settings.llm_model,
                      timeout_s=settings.llm_timeout_s, max_retries=settings.llm_max_retries,
                      backoff_s=settings.llm_backoff_s, concurrency=settings.llm_concurrency,
                      session=session)


def build_sink(settings: Any, profiles: list[SummaryProfile], builtin: Any,
               http: Optional[aiohttp.ClientSession] = None) -> SummarizerSink:
    """The sink as the settings say: with an LLM summarizer only when summarizer=llm.

    The caller closes it with `await sink.aclose()` on shutdown (in-flight calls cancelled).
    Each summary's LLM part is bounded by the call timeout and retries (LlmSummarizer.deadline_s),
    calls in flight by `llm_concurrency`.
    """
    llm = None
    if settings.summarizer == "llm":
        llm = LlmSummarizer(
            chat_client_from_settings(settings, http), builtin, settings.link_template,
            settings.replay_base_url, max_prompt_tokens=settings.llm_max_prompt_tokens,
            max_output_tokens=settings.llm_max_output_tokens, context_tokens=settings.llm_context_tokens,
            max_invented_share=settings.llm_max_invented_ids, project=project_from_settings(settings),
            policy=builtin.policy)
    return SummarizerSink(settings, profiles, builtin, llm, Triage.from_settings(settings))
