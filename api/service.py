"""What the endpoints do, without HTTP: summaries on demand, highlights jobs, answers, feedback."""
from __future__ import annotations

import asyncio
import logging
import time
import uuid
from typing import Any, Optional

import orjson
from aiokafka import AIOKafkaProducer

from replaylens.api.ask import Answer, ask_messages, builtin_answer, parse_llm_answer
from replaylens.api.highlights import (
    MAX_SESSIONS,
    failed_payload,
    highlights_prompt,
    overall_highlights,
    parse_highlights_answer,
    ready_payload,
)
from replaylens.api.profiles import ProfileRegistry
from replaylens.api.store import ApiStore
from replaylens.config.privacy import mask_text
from replaylens.config.settings import Settings
from replaylens.schemas.profiles import DEFAULT_PROFILE, SummaryProfile
from replaylens.schemas.summaries import Summary
from replaylens.sinks.builtin import BuiltinSummarizer, idempotency_key
from replaylens.sinks.llm_client import ChatClient, LlmUnavailable
from replaylens.sinks.llm_summarizer import LlmSummarizer
from replaylens.sinks.summarize import chat_client_from_settings, project_from_settings
from replaylens.sinks.webhooks import WebhookSender

log = logging.getLogger("replaylens.api")

HIGHLIGHT_JOBS_AT_ONCE = 4
ASK_TEMPERATURE = 0.2


def now_ms() -> int:
    return int(time.time() * 1000)


class SessionNotFound(LookupError):
    pass


class Service:
    def __init__(self, s: Settings, store: ApiStore, profiles: ProfileRegistry, producer: AIOKafkaProducer,
                 sender: WebhookSender) -> None:
        self.settings, self.store, self.profiles = s, store, profiles
        self.producer, self.sender = producer, sender
        self.builtin = BuiltinSummarizer.from_settings(s)
        self.chat: Optional[ChatClient] = chat_client_from_settings(s) if s.summarizer == "llm" else None
        self.llm: Optional[LlmSummarizer] = None
        if self.chat is not None:
            self.llm = LlmSummarizer(
                self.chat, self.builtin, s.link_template, s.replay_base_url,
                max_prompt_tokens=s.llm_max_prompt_tokens, max_output_tokens=s.llm_max_output_tokens,
                max_invented_share=s.llm_max_invented_ids, project=project_from_settings(s))
        self.counters: dict[str, int] = {
            "summaries_generated": 0, "summaries_reused": 0, "highlights_requested": 0,
            "highlights_ready": 0, "highlights_failed": 0, "webhooks_delivered": 0,
            "webhooks_undelivered": 0, "questions": 0, "feedback": 0}
        self._jobs: set[asyncio.Task] = set()
        self._job_slots = asyncio.Semaphore(HIGHLIGHT_JOBS_AT_ONCE)

    async def close(self) -> None:
        for task in list(self._jobs):
            task.cancel()
        await asyncio.gather(*self._jobs, return_exceptions=True)
        if self.chat is not None:
            await self.chat.close()

    # -- sessions ----------------------------------------------------------------------------
    async def resolve_session(self, session_id: str) -> tuple[str, list[dict[str, Any]]]:
        """(stored session id, its windows): the id as given, or Fullstory's userId:sessionId."""
        windows = await self.store.run(self.store.windows, session_id)
        if windows:
            return session_id, windows
        user_id, sep, bare = session_id.partition(":")
        if sep and bare:
            windows = await self.store.run(self.store.windows, bare)
            if windows and await self.store.run(self.store.user_of_session, bare) == user_id:
                return bare, windows
        raise SessionNotFound(session_id)

    # -- summaries ---------------------------------------------------------------------------
    async def summary(self, session_id: str, profile: SummaryProfile) -> Summary:
        """The stored summary of the session's latest window with this profile (as it is now),
        or one generated now, then published to the summaries topic and stored."""
        _, windows = await self.resolve_session(session_id)
        window = windows[-1]
        key = idempotency_key(window.get("window_id") or "", profile)
        stored = await self.store.run(self.store.summary_by_key, key)
        if stored is not None and stored.get("status") == "READY":
            self.counters["summaries_reused"] += 1
            return Summary.model_validate(stored)
        summary = await asyncio.wait_for(self._generate(window, profile), self.settings.api_generate_timeout_s)
        await self.producer.send_and_wait(self.settings.topic_summaries, key=summary.session_id.encode(),
                                          value=summary.model_dump_json().encode())
        await self.store.run(self.store.put_summary, summary.model_dump(mode="json"))
        self.counters["summaries_generated"] += 1
        return summary

    async def _generate(self, window: dict[str, Any], profile: SummaryProfile) -> Summary:
        if self.llm is not None:
            return await self.llm.summarize(window, profile, generated_at=now_ms())
        return await asyncio.to_thread(self.builtin.summarize, window, profile, generated_at=now_ms())

    # -- highlights --------------------------------------------------------------------------
    async def request_highlights(self, user_id: Optional[str], email: Optional[str], start_ms: int,
                                 end_ms: int, webhook_url: str, app_id: Optional[str] = None) -> str:
        """Persist the request (so a restart loses none), start its job, return its id.
        `app_id` is echoed as the payload's appID (LogRocket's "org/app"; default: our app id)."""
        request_id = uuid.uuid4().hex + uuid.uuid4().hex  # 64 hex digits, as LogRocket's ids
        email_key = self.store.email_key(email) if user_id is None else None
        await self.store.run(self.store.add_highlight_request, request_id, user_id, email_key,
                             start_ms, end_ms, webhook_url, app_id or self.settings.app_id)
        self.counters["highlights_requested"] += 1
        self.start_job(request_id)
        return request_id

    def start_job(self, request_id: str) -> None:
        task = asyncio.create_task(self._job(request_id), name=f"highlights-{request_id[:8]}")
        self._jobs.add(task)
        task.add_done_callback(self._jobs.discard)

    async def resume_pending(self) -> int:
        """Re-run every highlight request a previous process left undelivered."""
        pending = await self.store.run(self.store.pending_highlights)
        for request_id in pending:
            self.start_job(request_id)
        return len(pending)

    async def _job(self, request_id: str) -> None:
        async with self._job_slots:
            request = await self.store.run(self.store.highlight_request, request_id)
            if request is None:
                return
            if request["state"] == "PENDING":
                payload, error = await self._highlights_payload(request)
                await self.store.run(self.store.set_highlight_payload, request_id, payload["status"], payload, error)
                self.counters["highlights_ready" if payload["status"] == "READY" else "highlights_failed"] += 1
            else:
                payload = request["payload"]
            result = await self.sender.deliver(request["webhook_url"], payload,
                                               headers={"X-Replaylens-Request-Id": request_id})
            await self.store.run(self.store.finish_highlight, request_id, result.delivered, result.attempts,
                                 None if result.delivered else result.reason)
            self.counters["webhooks_delivered" if result.delivered else "webhooks_undelivered"] += 1
            if not result.delivered:
                log.warning("highlights %s: webhook not delivered after %d attempt(s): %s",
                            request_id, result.attempts, result.reason)

    async def _highlights_payload(self, request: dict[str, Any]) -> tuple[dict[str, Any], Optional[str]]:
        app_id, request_id = request["app_id"], request["request_id"]
        try:
            summaries = await asyncio.wait_for(self._highlight_summaries(request),
                                               self.settings.api_generate_timeout_s)
            overall = await asyncio.wait_for(self._overall(summaries), self.settings.api_generate_timeout_s)
        except asyncio.TimeoutError:
            return failed_payload(request_id, app_id), "generation timed out"
        except LlmUnavailable as exc:
            return failed_payload(request_id, app_id), f"LLM unavailable: {exc.reason}"
        except Exception as exc:  # noqa: BLE001 - any failure is reported FAILED to the webhook
            log.exception("highlights %s failed", request_id)
            return failed_payload(request_id, app_id), f"internal error: {type(exc).__name__}"
        return ready_payload(request_id, app_id, summaries, overall), None

    async def _highlight_summaries(self, request: dict[str, Any]) -> list[Summary]:
        windows = await self.store.run(self.store.windows_of_user, request["user_id"], request["email_key"],
                                       request["start_ms"], request["end_ms"], MAX_SESSIONS)
        profile = self.profiles.get(DEFAULT_PROFILE.id) or DEFAULT_PROFILE
        summaries = []
        for window in windows:
            stored = await self.store.run(self.store.summary_by_key,
                                          idempotency_key(window.get("window_id") or "", profile))
            if stored is not None and stored.get("status") == "READY":
                summaries.append(Summary.model_validate(stored))
            else:
                summaries.append(await asyncio.to_thread(self.builtin.summarize, window, profile,
                                                         generated_at=now_ms()))
        return summaries

    async def _overall(self, summaries: list[Summary]) -> str:
        if self.chat is None or not summaries:
            return overall_highlights(summaries)
        messages, by_id = highlights_prompt(summaries)
        text, _model, _attempts = await self.chat.complete(
            messages, validate=lambda content: parse_highlights_answer(content, by_id),
            temperature=ASK_TEMPERATURE, max_tokens=self.settings.llm_max_output_tokens, json_mode=True)
        return text

    # -- questions ---------------------------------------------------------------------------
    async def ask(self, session_id: str, question: str) -> Answer:
        _, windows = await self.resolve_session(session_id)
        window = windows[-1]
        self.counters["questions"] += 1
        if self.chat is None:
            return builtin_answer(window, question, self.builtin)
        messages = ask_messages(window, question, project_from_settings(self.settings),
                                self.settings.llm_max_prompt_tokens)
        try:
            text, model, _ = await asyncio.wait_for(
                self.chat.complete(messages, validate=parse_llm_answer, temperature=ASK_TEMPERATURE,
                                   max_tokens=self.settings.llm_max_output_tokens),
                self.settings.api_generate_timeout_s)
        except (LlmUnavailable, asyncio.TimeoutError) as exc:
            answer = builtin_answer(window, question, self.builtin)
            answer.fallback_reason = exc.reason if isinstance(exc, LlmUnavailable) else "LLM timed out"
            return answer
        return Answer(text, answered=True, answered_by="llm", model=model)

    # -- feedback ----------------------------------------------------------------------------
    async def feedback(self, session_id: str, profile_id: str, rating: str, comment: Optional[str]
                       ) -> dict[str, Any]:
        stored_id, _ = await self.resolve_session(session_id)
        summary = await self.store.run(self.store.latest_summary, stored_id, profile_id)
        if summary is None:
            raise LookupError(f"no summary of session {stored_id} with profile {profile_id!r} to rate")
        record = {"feedback_id": uuid.uuid4().hex, "session_id": stored_id, "profile_id": profile_id,
                  "summarizer": summary["summarizer"], "rating": rating,
                  "comment": mask_text(comment) if comment else None, "created_at": now_ms()}
        await self.producer.send_and_wait(self.settings.topic_feedback, key=stored_id.encode(),
                                          value=orjson.dumps(record))
        await self.store.run(self.store.put_feedback, record)
        self.counters["feedback"] += 1
        return record
