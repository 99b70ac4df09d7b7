"""What the alerting engine counts: one Observation per incident, from the three streams.

- raw events (still-open sessions, as they happen): source-sent rage/dead/error clicks and mouse
  thrash, console errors (js-error), network errors by status class, web vitals past the slow line;
- closed sessions: the signals the sessionizer DERIVED from raw clicks (source-sent ones were
  already counted from the events);
- summaries: abandoned goals (outcome `abandoned`), once per closed window whatever the profile.

Each observation is produced for its normalized URL and again for the site (`*`), with an id
that makes a redelivered message count once. Messages are masked (config/privacy.py).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Iterable, Optional
from urllib.parse import urlsplit

from replaylens.aggregates.deltas import SITE_URL
from replaylens.aggregates.urls import UrlNormalizer
from replaylens.config.privacy import DEFAULT_POLICY, PrivacyPolicy
from replaylens.sinks.incidents import GOOD_VITALS, POOR_VITALS, VitalsThresholds

SIGNAL_EVENT_TYPES = frozenset({"rage-click", "dead-click", "error-click", "mouse-thrash"})
# Every event type `from_event` may observe (the others never give an observation).
INCIDENT_EVENT_TYPES = SIGNAL_EVENT_TYPES | {"console-error", "network-error", "web-vitals"}
MAX_MESSAGE_CHARS = 200
_DIGITS = re.compile(r"\d+")
_CLIENT_ERROR, _SERVER_ERROR = range(400, 500), range(500, 600)


@dataclass(slots=True)
class Observation:
    obs_id: str
    url: str
    signal: str
    session_id: str
    timestamp: int
    message: Optional[str] = None      # masked, for "most common error messages"
    error_key: Optional[str] = None    # masked and digit-free, for new-error detection
    page: Optional[str] = None         # on the site-wide copy: the page it happened on

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.obs_id, "url": self.url, "signal": self.signal, "session_id": self.session_id,
                "timestamp": self.timestamp, "message": self.message, "error_key": self.error_key,
                "page": self.page}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Observation":
        return cls(str(d["id"]), str(d["url"]), str(d["signal"]), str(d["session_id"]), int(d["timestamp"]),
                   d.get("message"), d.get("error_key"), d.get("page"))


def api_error_signal(status: Any) -> str:
    try:
        code = int(status)
    except (TypeError, ValueError):
        return "api-error-network"
    if code in _CLIENT_ERROR:
        return "api-error-4xx"
    if code in _SERVER_ERROR:
        return "api-error-5xx"
    return "api-error-network"  # 0 or missing: the request never got an answer


def _endpoint(request_url: Optional[str], normalizer: UrlNormalizer) -> str:
    if not request_url:
        return "?"
    path = urlsplit(request_url).path or request_url
    return normalizer.normalize_path(path) if path.startswith("/") else path


class ObservationExtractor:
    """Pure mapping of contract dicts to observations (the adapters feed it)."""

    def __init__(self, normalizer: Optional[UrlNormalizer] = None, slow: VitalsThresholds = POOR_VITALS,
                 policy: PrivacyPolicy = DEFAULT_POLICY) -> None:
        self.normalizer = normalizer or UrlNormalizer()
        self.slow = slow
        self.policy = policy

    @classmethod
    def from_settings(cls, settings: Any) -> "ObservationExtractor":
        slow = GOOD_VITALS if settings.summary_slow_page == "good" else POOR_VITALS
        return cls(UrlNormalizer.from_settings(settings), slow, PrivacyPolicy.from_settings(settings))

    def _page(self, url: Optional[str]) -> Optional[str]:
        if not url:
            return None
        try:
            return self.normalizer.normalize(url)
        except ValueError:
            return None

    def _both(self, obs: Observation, url: Optional[str]) -> list[Observation]:
        """The observation for its page (when known) and for the whole site."""
        page = self._page(url)
        site = Observation(obs.obs_id, SITE_URL, obs.signal, obs.session_id, obs.timestamp,
                           obs.message, obs.error_key, page)
        if page is None:
            return [site]
        obs.url = page
        return [obs, site]

    def _mask(self, text: Optional[str]) -> Optional[str]:
        if not text:
            return None
        return (self.policy.text(str(text)) or "")[:MAX_MESSAGE_CHARS]

    def from_event(self, event: dict[str, Any]) -> list[Observation]:
        g = event.get
        return self.from_fields(g("type"), g("session_id"), g("timestamp"), g("event_id"), g("url"),
                                g("error"), g("metrics"))

    def from_fields(self, kind: Any, session_id: Any, ts: Any, event_id: Any, url: Any, error: Any,
                    metrics: Any) -> list[Observation]:
        """`from_event` of the only fields it reads (for an adapter that decodes just those)."""
        sid = str(session_id or "")
        if not sid or not isinstance(ts, int):
            return []
        eid = str(event_id or f"{sid}@{ts}")
        if kind in SIGNAL_EVENT_TYPES:
            return self._both(Observation(f"{kind}:{eid}", "", kind, sid, ts), url)
        if kind == "console-error":
            message = self._mask((error or {}).get("message")) or "console error"
            key = "js: " + _DIGITS.sub("N", message)
            return self._both(Observation(f"js:{eid}", "", "js-error", sid, ts, message, key), url)
        if kind == "network-error":
            error = error or {}
            method = str(error.get("method") or "GET").upper()
            endpoint = _endpoint(error.get("request_url"), self.normalizer)
            status = error.get("status")
            message = self._mask(f"{method} {endpoint} → {status if status is not None else 'no response'}")
            return self._both(Observation(f"api:{eid}", "", api_error_signal(status), sid, ts, message,
                                          "api: " + (message or "")), url)
        if kind == "web-vitals" and self._is_slow(metrics or {}):
            return self._both(Observation(f"slow:{sid}:{url}", "", "slow-page", sid, ts), url)
        return []

    def _is_slow(self, metrics: dict[str, Any]) -> bool:
        for name, limit in (("lcp", self.slow.lcp_ms), ("inp", self.slow.inp_ms), ("cls", self.slow.cls)):
            value = metrics.get(name)
            if isinstance(value, (int, float)) and value > limit:
                return True
        return False

    def from_closed_session(self, session: dict[str, Any]) -> list[Observation]:
        sid = str(session.get("session_id") or "")
        out: list[Observation] = []
        for signal in session.get("signals") or ():
            if not signal.get("derived", True) or signal.get("type") not in SIGNAL_EVENT_TYPES:
                continue
            ts = int(signal.get("timestamp") or session.get("ended_at") or 0)
            kind = signal["type"]
            eid = signal.get("event_id") or ts
            out += self._both(Observation(f"{kind}:{eid}", "", kind, sid, ts), signal.get("url"))
        return out

    def from_summary(self, summary: dict[str, Any]) -> list[Observation]:
        if (summary.get("outcome") or {}).get("status") != "abandoned":
            return []
        journey = summary.get("journey") or []
        url = journey[-1].get("url") if journey else None
        ts = int(summary.get("ended_at") or 0)
        window = summary.get("window_id") or summary.get("session_id")
        return self._both(Observation(f"abandoned:{window}", "", "abandoned-goal",
                                      str(summary.get("session_id") or ""), ts), url)

    def from_events(self, events: Iterable[dict[str, Any]]) -> list[Observation]:
        return [obs for event in events for obs in self.from_event(event)]
