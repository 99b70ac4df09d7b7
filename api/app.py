"""The aiohttp application: routes, key and rate-limit middleware, JSON errors, lifecycle.

`replaylens api` runs `serve()`; tests start the same thing as a process (tests/api_process.py).
"""
from __future__ import annotations

import asyncio
import json
import logging
import signal
import uuid
from importlib.metadata import PackageNotFoundError, version
from typing import Any, Awaitable, Callable, Optional

import jsonschema
import orjson
from aiohttp import web
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError
from pydantic import BaseModel, ValidationError

from replaylens.api import openapi
from replaylens.api.auth import KeyRing, RateLimiter, load_keys, presented_key
from replaylens.api.errors import ApiError, bad_request, error_body, from_validation, not_found
from replaylens.api.highlights import default_range
from replaylens.api.materializer import StoreMaterializer
from replaylens.api.models import PROFILE_ID, AskRequest, FeedbackRequest, GroupRequest, HighlightsRequest, SessionsQuery
from replaylens.api.profiles import ProfileRegistry, ReadOnlyProfile
from replaylens.api.service import Service, SessionNotFound, now_ms
from replaylens.api.store import ApiStore
from replaylens.config.alert_rules import AlertRules, live_change_refused, rules_over
from replaylens.config.privacy import PrivacyPolicy
from replaylens.config.settings import Settings
from replaylens.schemas.profiles import SummaryProfile
from replaylens.sinks.group import GroupFilter, summarize_group
from replaylens.sinks.links import replay_link
from replaylens.sinks.webhooks import WebhookPolicy, WebhookRefused, WebhookSender
from replaylens.streams.alert_rules_topic import (RULES_KEY, EffectiveRules, RulesRecord, decode_rules_record,
                                                   effective_rules, encode_rules_record)
from replaylens.streams.profiles_topic import CompactedView, ensure_compacted_topics
from replaylens.streams.topics import ensure_topics

log = logging.getLogger("replaylens.api")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
KAFKA_REQUEST_TIMEOUT_MS = 30_000  # a produce (profile, feedback, summary) waits at most this
CATCH_UP_TIMEOUT_S = 30.0  # how long start-up waits for the profiles topic to be read
GROUP_CANDIDATES = 5000  # sessions a group-summary filter looks through (newest first)
STALE_AFTER_INTERVALS = 3  # a worker silent this many status intervals is reported stale
PUBLIC = frozenset({"/health", "/openapi.json"})
SCOPES = {(method.upper(), path): scope for method, path, _, scope, _, _ in openapi.ROUTES}
STATUS_CODES = {400: "invalid_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
                405: "method_not_allowed", 409: "conflict", 413: "body_too_large", 415: "unsupported_media_type",
                422: "unprocessable", 429: "rate_limited", 503: "unavailable", 504: "timeout"}
CTX = web.AppKey("ctx", object)


def package_version() -> str:
    try:
        return version("replaylens")
    except PackageNotFoundError:
        return "0"


class Context:
    """Everything the handlers share, started and stopped with the application."""

    def __init__(self, s: Settings) -> None:
        self.settings = s
        self.keys = KeyRing(load_keys(s.api_keys.get_secret_value(), s.api_keys_file))
        if not self.keys.keys:
            raise ValueError("the API needs keys: set REPLAYLENS_API_KEYS or REPLAYLENS_API_KEYS_FILE")
        self.limiter = RateLimiter(s.api_rate_limit_per_minute)
        self.requests: dict[str, int] = {"total": 0, "unauthorized": 0, "forbidden": 0, "rate_limited": 0}
        self.store = ApiStore(s.api_db_path, PrivacyPolicy.from_settings(s).lookup_key)
        self.producer = AIOKafkaProducer(bootstrap_servers=s.kafka_bootstrap, acks="all",
                                         request_timeout_ms=KAFKA_REQUEST_TIMEOUT_MS)
        self.profiles = ProfileRegistry(s, self.producer)
        self.workers = CompactedView(s.kafka_bootstrap, s.topic_worker_status, orjson.loads)
        self.alert_rules = CompactedView(s.kafka_bootstrap, s.topic_alert_rules, decode_rules_record)
        self.materializer = StoreMaterializer(s, self.store)
        self.sender = WebhookSender(WebhookPolicy.from_settings(s))
        self.service = Service(s, self.store, self.profiles, self.producer, self.sender)

    async def start(self) -> None:
        s = self.settings
        await ensure_topics(s)
        await ensure_compacted_topics(s, [s.topic_profiles, s.topic_worker_status, s.topic_alert_rules])
        await ensure_plain_topic(s, s.topic_feedback)
        await self.producer.start()
        await self.profiles.start()
        await self.workers.start()
        await self.alert_rules.start()
        await self.materializer.start()
        try:
            await asyncio.wait_for(self.profiles.topic.caught_up.wait(), CATCH_UP_TIMEOUT_S)
        except asyncio.TimeoutError:
            log.warning("profiles topic not read to its end after %s s; serving anyway", CATCH_UP_TIMEOUT_S)
        resumed = await self.service.resume_pending()
        if resumed:
            log.warning("resumed %d undelivered highlight request(s)", resumed)

    def rules_in_force(self) -> EffectiveRules:
        return effective_rules(self.settings.rules, self.alert_rules.values)

    async def put_alert_rules(self, record: Optional[RulesRecord]) -> None:
        """Write the API's rules (None: delete them), then reflect them here at once."""
        value = None if record is None else encode_rules_record(record)
        await self.producer.send_and_wait(self.settings.topic_alert_rules, key=RULES_KEY.encode(), value=value)
        if record is None:
            self.alert_rules.values.pop(RULES_KEY, None)
        else:
            self.alert_rules.values[RULES_KEY] = record

    async def stop(self) -> None:
        await self.service.close()
        await self.sender.close()
        await self.materializer.stop()
        await self.workers.stop()
        await self.alert_rules.stop()
        await self.profiles.stop()
        await self.producer.stop()
        self.store.close()


async def ensure_plain_topic(s: Settings, name: str) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=s.kafka_bootstrap)
    await admin.start()
    try:
        if name not in set(await admin.list_topics()):
            try:
                await admin.create_topics([NewTopic(name, s.topic_partitions, s.topic_replication)])
            except TopicAlreadyExistsError:
                pass
    finally:
        await admin.close()


def ctx_of(request: web.Request) -> Context:
    return request.app[CTX]  # type: ignore[return-value]


def json_response(data: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(data), status=status, content_type="application/json")


# -- middleware ----------------------------------------------------------------------------------
@web.middleware
async def errors_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except ApiError as exc:
        return web.Response(body=orjson.dumps(exc.body()), status=exc.status, headers=exc.headers,
                            content_type="application/json")
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code = STATUS_CODES.get(exc.status, "error")
        message = exc.reason if exc.status != 413 else \
            f"request body larger than {request.app[CTX].settings.api_max_body_bytes} bytes"  # type: ignore[attr-defined]
        return json_response(error_body(code, message), exc.status)
    except asyncio.TimeoutError:
        return json_response(error_body("timeout", "generation took too long; try again"), 504)
    except KafkaError as exc:
        log.warning("Kafka unavailable on %s %s: %s", request.method, request.path, exc)
        return json_response(error_body("unavailable", "the event store (Kafka) is unavailable; try again"), 503)
    except Exception:  # noqa: BLE001 - never a traceback to the client
        log.exception("unhandled error on %s %s", request.method, request.path)
        return json_response(error_body("internal", "internal error"), 500)


@web.middleware
async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    ctx = ctx_of(request)
    if request.path in PUBLIC:
        return await handler(request)
    ctx.requests["total"] += 1
    presented = presented_key(request.headers.get("Authorization"))
    key = ctx.keys.find(presented) if presented else None
    if key is None:
        ctx.requests["unauthorized"] += 1
        raise ApiError(401, "unauthorized", "missing or unknown API key: send `Authorization: Bearer <key>` "
                       "(or `token <key>`)", headers={"WWW-Authenticate": 'Bearer realm="replaylens"'})
    resource = request.match_info.route.resource
    scope = SCOPES.get((request.method, resource.canonical if resource else ""))
    if scope is not None and scope not in key.scopes:
        ctx.requests["forbidden"] += 1
        raise ApiError(403, "forbidden", f"this API key lacks the {scope!r} scope")
    wait = ctx.limiter.acquire(key.key_id)
    if wait is not None:
        ctx.requests["rate_limited"] += 1
        raise ApiError(429, "rate_limited", "rate limit of this API key exceeded",
                       headers={"Retry-After": str(max(1, round(wait)))})
    return await handler(request)


# -- helpers -------------------------------------------------------------------------------------
async def json_object(request: web.Request) -> dict[str, Any]:
    try:
        data = await request.json(loads=orjson.loads)
    except (orjson.JSONDecodeError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise bad_request(f"the body is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise bad_request("the body must be a JSON object")
    return data


def validated(model: type[BaseModel], data: Any, whole: Optional[str] = None) -> Any:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise from_validation(exc, whole=whole) from None


def _profile_or_404(ctx: Context, profile_id: str, field: str = "profile_id") -> SummaryProfile:
    profile = ctx.profiles.get(profile_id)
    if profile is None:
        raise not_found(f"no profile with id {profile_id!r}", field)
    return profile


def _session_not_found(session_id: str) -> ApiError:
    return not_found(f"no session {session_id!r} is stored (it may not have closed yet)", "session_id")


# -- handlers ------------------------------------------------------------------------------------
async def health(request: web.Request) -> web.Response:
    ctx = ctx_of(request)
    return json_response({"status": "ok", "store_caught_up": ctx.materializer.caught_up.is_set()})


async def openapi_json(request: web.Request) -> web.Response:
    return json_response(openapi.document(package_version()))


async def create_profile(request: web.Request) -> web.Response:
    ctx = ctx_of(request)
    body = await json_object(request)
    body.setdefault("id", uuid.uuid4().hex)
    body.setdefault("streaming", False)  # API profiles are on demand unless asked to stream
    if not isinstance(body["id"], str) or not PROFILE_ID.match(body["id"]):
        raise bad_request("id: use 1 to 128 letters, digits, '.', '_' or '-', starting with a letter or digit", "id")
    profile = validated(SummaryProfile, body)
    schema = profile.llm.output_schema
    if schema is not None:
        try:
            jsonschema.validators.validator_for(schema).check_schema(schema)
        except jsonschema.SchemaError as exc:
            raise bad_request(f"llm.output_schema: not a valid JSON Schema: {exc.message}",
                              "llm.output_schema") from None
    try:
        replaced = await ctx.profiles.put(profile)
    except ReadOnlyProfile as exc:
        raise ApiError(409, "conflict", str(exc), "id") from None
    return json_response({"id": profile.id}, 200 if replaced else 201)


async def list_profiles(request: web.Request) -> web.Response:
    ctx = ctx_of(request)
    return json_response({"profiles": [ctx.profiles.describe(p) for p in ctx.profiles.all()]})


async def get_profile(request: web.Request) -> web.Response:
    ctx = ctx_of(request)
    return json_response(ctx.profiles.describe(_profile_or_404(ctx, request.match_info["profile_id"], "id")))


async def delete_profile(request: web.Request) -> web.Response:
    ctx = ctx_of(request)
    profile_id = request.match_info["profile_id"]
    try:
        deleted = await ctx.profiles.delete(profile_id)
    except ReadOnlyProfile as exc:
        raise ApiError(409, "conflict", str(exc), "id") from None
    if not deleted:
        raise not_found(f"no profile with id {profile_id!r}", "id")
    return json_response({"id": profile_id, "deleted": True})


async def session_summary(request: web.Request) -> web.Response:
    ctx = ctx_of(request)
    session_id = request.match_info["session_id"]
    profile_id = request.query.get("config_profile")
    if not profile_id:
        raise bad_request("config_profile is required (a profile id)", "config_profile")
    profile = _profile_or_404(ctx, profile_id, "config_profile")
    try:
        summary = await ctx.service.summary(session_id, profile)
    except SessionNotFound:
        raise _session_not_found(session_id) from None
    if summary.status != "READY":
        raise ApiError(422, "summary_failed", f"the summary could not be made: {summary.error}", "config_profile")
    return json_response({"summary": summary.summary})


async def list_sessions(request: web.Request) -> web.Response:
    ctx = ctx_of(request)
    unknown = set(request.query) - {"uid", "email", "limit"}
    if unknown:
        raise bad_request(f"unknown query parameter {sorted(unknown)[0]!r}", sorted(unknown)[0])
    query = validated(SessionsQuery, dict(request.query), whole="uid")
    email_key = ctx.store.email_key(query.email) if query.uid is None else None
    rows = await ctx.store.run(ctx.store.sessions_of_user, query.uid, email_key, query.limit)
    s = ctx.settings
    sessions = []
    for row in rows:
        user_id, session_id = row["user_id"], row["session_id"]
        prefix = f"{user_id}:" if user_id else None
        sessions.append({
            "userId": user_id,
            "sessionId": session_id[len(prefix):] if prefix and session_id.startswith(prefix) else session_id,
            "createdTime": str(row["started_at"] // 1000),  # Fullstory: epoch seconds, as a string
            "url": replay_link(s.link_template, s.replay_base_url, session_id, row["started_at"]),
        })
    return json_response({"sessions": sessions})


async def request_highlights(request: web.Request) -> web.Response:
    ctx = ctx_of(request)
    body = validated(HighlightsRequest, await json_object(request), whole="userID")
    try:
        await ctx.sender.check(body.webhookURL)
    except WebhookRefused as exc:
        raise bad_request(f"webhookURL: {exc}", "webhookURL") from None
    start_ms, end_ms = default_range(now_ms(), body.timeRange.startMs if body.timeRange else None,
                                     body.timeRange.endMs if body.timeRange else None)
    org, app = request.match_info.get("org_id"), request.match_info.get("app_id")
    request_id = await ctx.service.request_highlights(body.userID, body.userEmail, start_ms, end_ms,
                                                      body.webhookURL, f"{org}/{app}" if org and app else None)
    return json_response({"id": request_id})


async def highlight_state(request: web.Request) -> web.Response:
    ctx = ctx_of(request)
    state = await ctx.store.run(ctx.store.highlight_request, request.match_info["request_id"])
    if state is None:
        raise not_found("no highlights request with that id", "request_id")
    return json_response({k: state[k] for k in ("request_id", "state", "result_status", "attempts",
                                                 "last_error", "created_at", "updated_at")})


async def group_summary(request: web.Request) -> web.Response:
    ctx = ctx_of(request)
    body = validated(GroupRequest, await json_object(request))
    filt = GroupFilter(**body.model_dump())
    sessions = await ctx.store.run(ctx.store.candidate_sessions, body.start_ms, body.end_ms, body.user_id,
                                   GROUP_CANDIDATES)
    summary = await asyncio.to_thread(summarize_group, sessions, filt, ctx.service.builtin,
                                      ctx.settings.privacy_hash_salt)
    return json_response(summary.model_dump(mode="json"))


async def ask(request: web.Request) -> web.Response:
    ctx = ctx_of(request)
    body = validated(AskRequest, await json_object(request))
    if len(body.question) > ctx.settings.api_max_question_chars:
        raise bad_request(f"question: at most {ctx.settings.api_max_question_chars} characters", "question")
    session_id = request.match_info["session_id"]
    try:
        answer = await ctx.service.ask(session_id, body.question)
    except SessionNotFound:
        raise _session_not_found(session_id) from None
    return json_response(answer.as_dict(session_id))


async def feedback(request: web.Request) -> web.Response:
    ctx = ctx_of(request)
    body = validated(FeedbackRequest, await json_object(request))
    session_id = request.match_info["session_id"]
    try:
        record = await ctx.service.feedback(session_id, body.profile_id, body.rating, body.comment)
    except SessionNotFound:
        raise _session_not_found(session_id) from None
    except LookupError as exc:
        raise not_found(str(exc), "profile_id") from None
    return json_response({"id": record["feedback_id"], **{k: record[k] for k in (
        "session_id", "profile_id", "summarizer", "rating")}}, 201)


async def feedback_counts(request: web.Request) -> web.Response:
    ctx = ctx_of(request)
    return json_response({"counts": await ctx.store.run(ctx.store.feedback_counts)})


async def get_alert_rules(request: web.Request) -> web.Response:
    return json_response(ctx_of(request).rules_in_force().describe())


async def put_alert_rules(request: web.Request) -> web.Response:
    """Replace the API's alert rules: keys not given keep the settings' values."""
    ctx = ctx_of(request)
    body = await json_object(request)
    try:
        wanted = rules_over(ctx.settings.rules, body)
    except ValidationError as exc:
        raise from_validation(exc, whole="rules") from None
    refused = live_change_refused(ctx.settings.rules, wanted)
    if refused is not None:
        raise ApiError(409, "conflict", refused, next((f for f in ("window_ms", "step_ms") if f in body), None))
    await ctx.put_alert_rules(RulesRecord(wanted, now_ms()))
    return json_response(ctx.rules_in_force().describe())


async def delete_alert_rules(request: web.Request) -> web.Response:
    """Back to the settings' alert rules."""
    ctx = ctx_of(request)
    await ctx.put_alert_rules(None)
    return json_response(ctx.rules_in_force().describe())


async def status(request: web.Request) -> web.Response:
    ctx = ctx_of(request)
    stale_after_ms = STALE_AFTER_INTERVALS * ctx.settings.worker_status_interval_s * 1000
    workers = [{**w, "stale": now_ms() - int(w.get("written_at") or 0) > stale_after_ms}
               for w in sorted(ctx.workers.values.values(), key=lambda w: str(w.get("worker")))]
    totals: dict[str, int] = {}
    for worker in workers:
        if worker["stale"]:
            continue  # a worker gone for good still has its last record in the compacted topic
        for name, value in (worker.get("counters") or {}).items():
            if isinstance(value, int):
                totals[name] = totals.get(name, 0) + value
    return json_response({
        "workers": workers, "worker_totals": totals,
        "api": {"requests": ctx.requests, **ctx.service.counters,
                "store": await ctx.store.run(ctx.store.counts),
                "store_records_applied": ctx.materializer.applied,
                "store_caught_up": ctx.materializer.caught_up.is_set()},
    })


HANDLERS: dict[tuple[str, str], Handler] = {
    ("get", "/health"): health, ("get", "/openapi.json"): openapi_json,
    ("post", "/v2/visit_profile"): create_profile, ("get", "/v2/visit_profile"): list_profiles,
    ("get", "/v2/visit_profile/{profile_id}"): get_profile,
    ("delete", "/v2/visit_profile/{profile_id}"): delete_profile,
    ("get", "/v2/sessions/{session_id}/summary"): session_summary,
    ("get", "/sessions/v2"): list_sessions,
    ("post", "/v1/highlights"): request_highlights,
    ("post", "/v1/orgs/{org_id}/apps/{app_id}/highlights/"): request_highlights,
    ("post", "/v1/orgs/{org_id}/apps/{app_id}/highlights"): request_highlights, ("get", "/v1/highlights/{request_id}"): highlight_state,
    ("post", "/v1/group-summaries"): group_summary,
    ("post", "/v1/sessions/{session_id}/ask"): ask,
    ("post", "/v1/summaries/{session_id}/feedback"): feedback,
    ("get", "/v1/feedback/counts"): feedback_counts, ("get", "/v1/status"): status,
    ("get", "/v1/alerts/rules"): get_alert_rules, ("put", "/v1/alerts/rules"): put_alert_rules,
    ("delete", "/v1/alerts/rules"): delete_alert_rules,
}


def build_app(ctx: Context) -> web.Application:
    app = web.Application(middlewares=[errors_middleware, auth_middleware],
                          client_max_size=ctx.settings.api_max_body_bytes)
    app[CTX] = ctx
    for method, path, *_ in openapi.ROUTES:
        app.router.add_route(method.upper(), path, HANDLERS[(method, path)])
    return app


async def serve(s: Settings, ready: Optional[Callable[[str], None]] = None) -> None:
    """Run the API until SIGTERM/SIGINT: start the context, bind, serve, stop cleanly."""
    ctx = Context(s)
    await ctx.start()
    runner = web.AppRunner(build_app(ctx), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, s.api_host, s.api_port)
    await site.start()
    host, port = runner.addresses[0][:2]
    address = f"http://{host}:{port}"
    log.warning("replaylens API listening on %s", address)
    if ready is not None:
        ready(address)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()
        await ctx.stop()
