"""One typed settings object, read from REPLAYLENS_* environment variables.

Every knob of the pipeline lives here with its default; README 'Configuration' lists them.
"""
from __future__ import annotations

import ipaddress
import json
from pathlib import Path
from typing import Annotated, Any, Literal, Optional

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from replaylens.config.alert_rules import AlertRules, WebhookTarget

from replaylens.config.goals import DEFAULT_GOALS, Goal
from replaylens.config.privacy import DEFAULT_ALLOWED_PROPERTY_KEYS, DEFAULT_ALLOWED_QUERY_PARAMS


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="REPLAYLENS_", extra="ignore")

    # Kafka and topics
    kafka_bootstrap: str = Field(default="localhost:9092", description='Kafka bootstrap servers (host:port[,host:port])')
    app_id: str = Field(default="replaylens", description='Faust app id: the consumer group and the prefix of internal topics')
    topic_events: str = Field(default="replay-events", description='Raw replay events in (one JSON object per message, keyed by session id)')
    topic_rrweb: str = Field(default="replay-rrweb", description='Whole rrweb recordings in (one recording per message, keyed by session id)')
    topic_dead_letter: str = Field(default="replay-dead-letter", description='Rejected and late messages, with the reason and origin')
    topic_closed_sessions: str = Field(default="replay-closed-sessions", description='Closed sessions out, keyed by session id')
    topic_summaries: str = Field(default="replay-summaries", description='Summaries out, keyed by session id')
    topic_url_deltas: str = Field(default="replay-url-deltas", description='Per-URL aggregate deltas, in batches (no key); every worker reads all of it')
    topic_rekeyed: str = Field(default="replay-events-rekeyed", description='Internal: events that arrived without the session id as key, re-keyed')
    topic_partitions: int = Field(description='Partitions of every pipeline topic (must match across them)', default=8, ge=1)
    topic_replication: int = Field(description='Replication factor of the topics the pipeline creates', default=1, ge=1)
    data_dir: Path = Field(default=Path("./data"), description='Where local outputs go (embedded runner NDJSON files, Faust data)')
    batch_size: int = Field(default=10_000, ge=1, description="Most events the worker takes from Kafka per batch (one flush, one commit per batch; a batch holds what has arrived, it never waits to fill up). 10,000 doubled throughput over 2,000 under a backlog (BENCHMARKS.md)")
    tick_interval_s: float = Field(default=1.0, gt=0, description="How often idle sessions are checked")

    # Sessionization (event time, milliseconds)
    session_gap_ms: int = Field(default=30 * 60_000, gt=0, description="Inactivity gap that closes a session")
    session_grace_ms: int = Field(default=30_000, ge=0, description="How late an event may arrive")
    session_max_duration_ms: int = Field(description='A longer session is split into linked parts', default=12 * 3_600_000, gt=0)
    session_max_events: int = Field(description='A session with more events is split into linked parts', default=10_000, gt=1)
    future_tolerance_ms: int = Field(default=10 * 60_000, ge=0, description="Timestamps further ahead of now are rejected")

    # Signal detection
    rage_click_count: int = Field(description='Clicks on one target that make a rage click', default=3, ge=2)
    rage_click_window_ms: int = Field(description="...within this time from the burst's first click", default=1_000, gt=0)
    dead_click_window_ms: int = Field(description='A click the page does not answer within this (DOM change, navigation, input, network, scroll; on contract events: navigation, input, custom event or error) may be dead', default=2_500, gt=0)
    error_click_window_ms: int = Field(description='A click followed by a console or network error within this is an error click', default=2_000, gt=0)
    thrash_min_direction_changes: int = Field(description='rrweb mapping: pointer reversals that make mouse-thrash', default=6, ge=2)
    thrash_window_ms: int = Field(description='rrweb mapping: ...within this time', default=1_500, gt=0)

    # Aggregates (DuckDB)
    duckdb_path: Path = Field(default=Path("./data/replaylens.duckdb"), description='The aggregates DuckDB file (one per worker)')
    aggregate_window_days: int = Field(description='Rolling window of the per-URL baselines, days', default=7, ge=1)
    aggregate_retention_days: int = Field(description='Hourly buckets older than this are deleted, days', default=30, ge=1)
    comparison_min_sessions: int = Field(default=20, ge=1, description="Below this sample no comparison is claimed")
    url_keep_query_params: list[str] = Field(default_factory=list, description="Query params kept in normalized URLs")
    url_id_patterns: list[str] = Field(default_factory=list, description="Extra regexes of path segments that are ids")

    # Summaries
    profiles_dir: Optional[Path] = Field(default=None, description='Directory of summary profile JSON files (one profile per file); the default profile is built in')
    summaries_path: Path = Field(default=Path("./data/summaries.ndjson"), description='Embedded runner: summaries NDJSON file')
    replay_base_url: str = Field(default="http://localhost:8080/replay", description='Base URL of your replay viewer, used in time-coded links')
    link_template: str = Field(default="{replay_base_url}/sessions/{session_id}?t={timestamp_ms}", description='Time-coded link template; placeholders {replay_base_url}, {session_id}, {timestamp_ms}')
    summary_slow_page: Literal["good", "poor"] = Field(
        default="poor", description="A page is a slow-page issue when a Core Web Vital is worse than Google's "
        "'poor' line (LCP 4 s, INP 500 ms, CLS 0.25) or already past 'good' (LCP 2.5 s, INP 200 ms, CLS 0.1)")
    site_name: str = Field(default="", description='Project data for the LLM prompt: site name')
    site_url: str = Field(default="", description='Project data for the LLM prompt: site URL')
    site_industry: str = Field(default="", description='Project data for the LLM prompt: industry')

    # LLM (OpenAI-compatible chat completions)
    summarizer: Literal["builtin", "llm"] = Field(default="builtin", description='builtin (no network) or llm (OpenAI-compatible chat completions, with built-in fallback)')
    llm_base_url: str = Field(default="http://localhost:8000/v1", description='OpenAI-compatible API base URL (OpenAI, vLLM, Ollama /v1, llama.cpp server)')
    llm_api_key: str = Field(default="", description='Bearer token for the LLM API (empty for local servers)')
    llm_model: str = Field(default="gpt-4o-mini", description="Model name sent to the LLM API (a profile's llm.model overrides it)")
    llm_timeout_s: float = Field(description='Timeout of one LLM call, seconds', default=30.0, gt=0)
    llm_max_retries: int = Field(description='Retries after a failed or invalid LLM answer before falling back', default=3, ge=0)
    llm_backoff_s: float = Field(description='First retry delay, doubled each retry (with jitter; Retry-After honoured)', default=0.5, ge=0)
    llm_concurrency: int = Field(description='LLM calls in flight at once per worker', default=4, ge=1)
    llm_max_prompt_tokens: int = Field(description='Token budget of the prompt; low-value events are dropped to fit', default=6_000, gt=0)
    llm_max_output_tokens: int = Field(description='max_tokens asked of the model', default=800, gt=0)
    llm_triage: Literal["all", "issues", "min-duration", "issues-or-min-duration"] = Field(default="issues-or-min-duration", description='Which closed sessions go to the LLM: all, issues, min-duration, issues-or-min-duration')
    llm_triage_min_duration_ms: int = Field(description='Minimum session duration for the min-duration triage modes', default=60_000, ge=0)
    llm_calls_per_minute: int = Field(description='Budget of LLM calls per minute per worker (0 = no limit); the rest get the built-in summary', default=60, ge=0)
    llm_max_invented_ids: float = Field(default=0.3, ge=0, le=1, description="Share of invented event ids that makes an answer invalid")

    # Privacy
    privacy_unmask_inputs: bool = Field(default=False, description="Let typed input values through unmasked")
    privacy_unmask_emails: bool = Field(default=False, description='Let emails through unmasked in text and summaries')
    privacy_allowed_fields: list[str] = Field(default_factory=list, description="Input selectors whose values may pass")
    privacy_hash_salt: str = Field(default="replaylens", description='Salt of the hashed user ids in group summaries')

    # HTTP API (later issue)
    api_host: str = Field(default="127.0.0.1", description='HTTP API bind address')
    api_port: int = Field(default=8080, description='HTTP API port')
    log_level: str = Field(default="INFO", description='Log level of the worker')

    # rrweb recordings and true signals (issue 10): dead clicks on contract events, automated sessions
    dead_click_retry_window_ms: int = Field(default=10_000, gt=0, description=(
        "A click without DOM information is dead only when, with no answer in between, the user "
        "clicks the same target again within this"))
    baselines_exclude_automated: bool = Field(default=True, description=(
        "Keep sessions that look automated (headless or webdriver user agent, automation markers in "
        "console output) out of the per-URL baselines"))

    # --- HTTP API and outgoing webhooks (issue 13) ---
    webhook_allow_networks: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="Comma-separated CIDRs that webhooks may reach although private, "
        "loopback or link-local (all such addresses are refused otherwise)")
    webhook_timeout_s: float = Field(default=10.0, gt=0, description="Timeout of one webhook delivery attempt, seconds")
    webhook_max_attempts: int = Field(default=5, ge=1, description="Webhook delivery attempts before the failure is recorded")
    webhook_backoff_s: float = Field(default=0.5, ge=0, description="First webhook retry delay, doubled each retry (full jitter)")
    webhook_max_backoff_s: float = Field(default=30.0, ge=0, description="Longest delay between two webhook attempts, seconds")
    webhook_max_redirects: int = Field(default=3, ge=0, description="Redirects a webhook delivery follows (each one re-checked)")

    topic_profiles: str = Field(default="replay-profiles", description="Summary profiles created through the API "
                                "(compacted, keyed by profile id; the API writes, every worker reads)")
    topic_feedback: str = Field(default="replay-feedback", description="Summary feedback (thumbs up/down) given through the API, keyed by session id")
    topic_worker_status: str = Field(default="replay-worker-status", description="Each worker's status.json counters (compacted, keyed by worker), served by the API")
    worker_status_interval_s: float = Field(default=5.0, gt=0, description="How often a worker publishes its counters to the status topic")
    api_keys: SecretStr = Field(default=SecretStr(""), description="Comma-separated API keys with every scope (Authorization: Bearer <key> or token <key>)")
    api_keys_file: Optional[Path] = Field(default=None, description="File of API keys, one per line: `<key> [scope,scope]` (scopes read, write; none = both); # comments")
    api_db_path: Path = Field(default=Path("./data/api.duckdb"), description="The API's own DuckDB file (materialized from Kafka; never a worker's file)")
    api_max_body_bytes: int = Field(default=256 * 1024, ge=1024, description="Largest request body the API accepts, bytes")
    api_rate_limit_per_minute: int = Field(default=600, ge=0, description="Requests per minute per API key (0 = no limit); the burst is the same size")
    api_generate_timeout_s: float = Field(default=120.0, gt=0, description="Longest an on-demand summary, answer or highlights generation may take, seconds")
    api_max_question_chars: int = Field(default=1000, ge=1, description="Longest question accepted by /v1/sessions/{id}/ask")

    @field_validator("webhook_allow_networks", mode="before")
    @classmethod
    def _split_networks(cls, value: object) -> object:
        """Accept "10.0.0.0/8,127.0.0.1/32" (or a JSON list); every entry must be a CIDR."""
        if isinstance(value, str):
            value = value.strip()
            value = json.loads(value) if value.startswith("[") else value.split(",")
        networks = [str(v).strip() for v in (value or []) if str(v).strip()]
        for network in networks:
            ipaddress.ip_network(network, strict=False)
        return networks

    # Alerts (issue 14): rules as JSON in one setting or a file; see README 'Alerts'
    topic_alerts: str = Field(default="replay-alerts", description='Alerts out (spikes, new errors, all-clears, digests), keyed by "<url>|<signal>"')
    topic_alert_rules: str = Field(default="replay-alert-rules", description="Alert rules set through the API "
                                   "(compacted, one record; the API writes, every worker follows it and applies them live)")
    alert_rules: Optional[AlertRules] = Field(default=None, description='Alert rules as JSON (README "Alerts"); defaults when unset')
    alert_rules_file: Optional[Path] = Field(default=None, description='A JSON file of alert rules; overrides REPLAYLENS_ALERT_RULES')
    alert_webhooks: list[WebhookTarget] = Field(default_factory=list, description='Webhooks for alerts: JSON list of {"url", "format": "json"|"slack"}; delivered by sinks/webhooks.py (REPLAYLENS_WEBHOOK_* limits)')
    alerts_path: Optional[Path] = Field(default=None, description='Embedded runner: alerts NDJSON file (default <data_dir>/alerts.ndjson)')

    # --- Summaries and privacy (issue 11): goals, incidents, URL/property masking, identity, LLM
    privacy_allowed_query_params: list[str] = Field(
        default_factory=lambda: list(DEFAULT_ALLOWED_QUERY_PARAMS),
        description="URL query parameters whose values pass unmasked (globs like utm_* allowed); every other value becomes [masked]")
    privacy_allowed_property_keys: list[str] = Field(
        default_factory=lambda: list(DEFAULT_ALLOWED_PROPERTY_KEYS),
        description="Event property keys whose values pass (after the free-text rules); every other value becomes [masked]")
    privacy_identity_secret: str = Field(
        default="", description="SECRET key of the HMAC that replaces user emails and org names (set it in production; a lookup recomputes the hash)")
    privacy_keep_identity: bool = Field(
        default=False, description="Keep user emails and org names as sent instead of their keyed hash (SENSITIVE)")
    privacy_dead_letter_keep_raw: bool = Field(
        default=False, description="Dead letters also keep the raw message bytes, unmasked, as original_base64 (SENSITIVE)")
    summary_goals: list[Goal] = Field(
        default_factory=lambda: [g.model_copy() for g in DEFAULT_GOALS],
        description="Goals whose reach or abandonment is the outcome: JSON list of {name, events, url_patterns, start_events, start_url_patterns}; the first goal reached wins")
    summary_report_nonblocking_errors: bool = Field(
        default=True, description="List errors the user got past (the goal was reached after them) as low-severity issues; false leaves them out")
    llm_context_tokens: int = Field(
        default=8_192, gt=0, description="Context window of the served model, tokens: prompt + max output must fit in it")

    # Sizes: no record the pipeline writes outgrows its topic (README 'Limits'). Events are capped,
    # sessions split by bytes, state written as appended pieces, dead letters carry an excerpt.
    max_record_bytes: int = Field(
        default=1_000_000, ge=65_536, description="Largest record the pipeline writes (below Kafka's default "
        "1 MiB message.max.bytes); the producer's max.request.size and the topics' max.message.bytes allow it")
    max_event_bytes: int = Field(
        default=64 * 1024, ge=4096, description="An accepted event larger than this (as JSON) is capped: long "
        "strings and lists are cut with a marker, `_truncated` records the original size")
    session_max_bytes: int = Field(
        default=256 * 1024, ge=4096, description="A session whose buffered events pass this many bytes is split "
        "into linked parts (close reason max-bytes)")
    state_piece_max_bytes: int = Field(
        default=256 * 1024, ge=4096, description="Open-session state is written as appended pieces of at most "
        "this size")
    dead_letter_excerpt_bytes: int = Field(
        default=4096, ge=0, description="Bytes of the original message a dead letter quotes (masked); its size "
        "and sha256 identify the whole")

    @model_validator(mode="after")
    def _sizes_fit_records(self) -> "Settings":
        # A closed session holds up to session_max_bytes of events plus the one that crossed it
        # and its context (latest user, org, device, location: four more at most).
        worst = self.session_max_bytes + 5 * self.max_event_bytes
        if worst > self.max_record_bytes or self.state_piece_max_bytes > self.max_record_bytes:
            raise ValueError(f"session_max_bytes + 5 x max_event_bytes ({worst}) and state_piece_max_bytes "
                             f"must not exceed max_record_bytes ({self.max_record_bytes})")
        return self


    # --- Operations (ops engineer, issue 9): event time, health and metrics ---------------------
    watermark_min_sessions: int = Field(
        default=5, ge=1, description="Event time moves only when this many distinct sessions have reached it "
        "(fewer senders with clocks ahead cannot drag it forward)")
    metrics_host: str = Field(default="0.0.0.0", description="Bind address of the worker's /health and Prometheus /metrics")
    metrics_port: int = Field(default=9464, ge=0, le=65535,
                              description="Port of the worker's /health and Prometheus /metrics (0 = not served)")

    # Worker: roles, batching, outputs, recovery and shutdown (streams/worker.py)
    worker_roles: str = Field(default="sessionize,summarize", description="What this worker runs, comma-separated: sessionize (events -> closed sessions with comparisons, url deltas, rrweb ingest), summarize (closed sessions -> summaries); both by default")
    kafka_session_timeout_ms: int = Field(default=10_000, ge=1_000, description="Consumer group session timeout: how long the group waits for a silent (killed) worker before giving its partitions to others. Kafka's own default is 45 s; 10 s bounds a restart's wait")
    kafka_heartbeat_interval_ms: int = Field(default=3_000, ge=100, description="Consumer heartbeat interval (a third of the session timeout, Kafka's rule of thumb)")
    producer_compression: Literal["none", "gzip", "lz4", "zstd"] = Field(default="zstd", description="Compression of the worker's output batches (closed sessions, state and summaries compress 9-12x with zstd); zstd is the default because aiokafka's lz4 is lz4-HC level 9, about 4x zstd's CPU per record (bench/summarize_bench.py)")
    producer_linger_ms: int = Field(default=5, ge=0, description="How long the worker's producer waits to fill a batch")
    producer_max_request_size: int = Field(default=1_048_576, ge=1024, description="Largest record the worker sends (the broker's default message.max.bytes); a larger output is dead-lettered as output-too-large, with an excerpt, its size and digest")
    summarize_concurrency: int = Field(default=256, ge=1, description="Closed sessions summarized at once per worker: with an LLM each is awaited on its own, so a slow LLM call holds only its own session; with the built-in summarizer only, the largest batch read and summarized in one pass")
    shutdown_timeout_s: float = Field(default=10.0, gt=0, description="On SIGTERM, how long in-flight summaries may finish; the rest are cancelled and left (uncommitted) for the next worker")
    rekey_hold_timeout_ms: int = Field(default=30_000, gt=0, description="Safety valve of the re-key hold: sessions wait for their events on their way through the re-key topic (and a newly assigned partition for the re-key backlog it had at assignment) until the worker has read that far; a wait is dropped only when its re-key partition has not been read any further for this long while reading is healthy")
    retention_interval_s: float = Field(default=3_600.0, gt=0, description="How often old hourly aggregate buckets are pruned")

    # --- Baselines (issue 12, baselines): what the aggregates file keeps besides the sketches ----
    aggregate_keep_vital_samples: bool = Field(default=True, description=(
        "Also store every raw web-vital sample (`vital_samples`, for analytics: exact quantiles, "
        "other percentiles); comparisons read only the hourly sketches (`vital_sketches`), so false "
        "saves the write and the disk"))


    @property
    def roles(self) -> set[str]:
        """worker_roles as a set; an unknown role is a clear error at start."""
        roles = {r.strip() for r in self.worker_roles.split(",") if r.strip()}
        unknown = roles - {"sessionize", "summarize"}
        if unknown or not roles:
            raise ValueError(f"REPLAYLENS_WORKER_ROLES: unknown role(s) {sorted(unknown)}; "
                             "use sessionize, summarize or both")
        return roles

    @property
    def state_topic(self) -> str:
        """Compacted topic holding the open sessions (one record per session id)."""
        return f"{self.app_id}-open-sessions"

    @field_validator("alert_rules", "alert_webhooks", mode="before")
    @classmethod
    def _json_text(cls, value: Any) -> Any:
        """JSON text also when passed as a value (the environment is parsed already)."""
        return json.loads(value) if isinstance(value, (str, bytes)) else value

    @property
    def rules(self) -> AlertRules:
        """The effective alert rules (the rules file wins over the inline JSON)."""
        return AlertRules.load(self.alert_rules, self.alert_rules_file)

    @property
    def alert_observations_topic(self) -> str:
        """Internal: alert observations re-keyed by normalized URL (one URL, one evaluator)."""
        return f"{self.app_id}-alert-observations"

    @property
    def alert_state_topic(self) -> str:
        """Compacted: the alert state of each URL (open spikes, cooldowns, windows)."""
        return f"{self.app_id}-alert-state"


def setting_default(name: str) -> Any:
    """The documented default of one setting: code that needs a default takes it from here."""
    f = Settings.model_fields[name]
    return f.default_factory() if f.default_factory else f.default


def settings_markdown() -> str:
    """The README's configuration table, generated from the model so the two cannot drift."""
    rows = ["| variable | default | meaning |", "| --- | --- | --- |"]
    for name, f in Settings.model_fields.items():
        default = f.default_factory() if f.default_factory else f.default
        if isinstance(default, Path):
            default = str(default)
        if isinstance(default, SecretStr):
            default = default.get_secret_value()
        if isinstance(default, list) and default and hasattr(default[0], "model_dump"):
            default = [item.name for item in default]  # goals: named here, spelled out in README
        shown = "" if default in ("", None) else f"`{default}`"
        rows.append(f"| `REPLAYLENS_{name.upper()}` | {shown} | {f.description or ''} |")
    return "\n".join(rows)
