"""Per-URL deltas: the additive contribution of ONE closed session to the aggregates.

Every figure of a delta is a count or a sum, and web vitals are a multiset of samples, so
deltas merged in any order, on any worker, give the same totals as a recompute. Deltas go to
the url-deltas topic in batches (`encode_delta_records`/`decode_delta_record`; `to_dict`/
`from_dict` are the first format, one delta per record), and each has a deterministic `delta_id` (from window_id, url and bucket) so that a redelivered delta is
applied once.

Decisions (see aggregates/SCHEMA.md):
- Bucket: the hour (UTC, epoch ms of its start) of the session's `started_at`. All of one
  session's contributions land in one bucket, so "visits" (sessions that viewed the page)
  summed over a window counts each session once.
- Each closed window is one session. A window that continues a split session
  (`previous_window_id` set) has no entry; a window closed by a limit (max-duration or
  max-events) has no exit; bounces count only windows with neither, and one pageview.
- Events and signals are attributed to a page visit by their URL when it is one of the
  session's visited pages (the latest visit of that URL entered at or before the event, or
  its first visit), otherwise by time (the visit open at that time; before the first visit:
  the first). Web vitals report on unload, so their URL is a better guide than their time.
- Web-vital samples: per page view and metric, the last value reported (web-vitals reports
  a metric's final value last); non-finite and negative values are ignored.
- Errors: console-error events are JavaScript errors, network-error events API errors.
- Frustration: signals of FRUSTRATION_TYPES; each signal counts once whatever its `count`.
- The site-wide row has url `*`: visits = 1 (the session), entries/exits/bounces as above,
  pageviews, time on page, errors, frustration and vitals of all pages, including events
  of a session without pages.
"""
from __future__ import annotations

import hashlib
import math
from bisect import bisect_right
from operator import add, attrgetter
from typing import Annotated, Any, Iterable, Literal, Optional, get_args

import msgspec
import orjson

from replaylens.aggregates.urls import UrlNormalizer
from replaylens.schemas.sessions import window_id_of

HOUR_MS = 3_600_000
SITE_URL = "*"
VitalName = Literal["lcp", "inp", "cls", "fcp", "ttfb"]
VITALS: tuple[str, ...] = get_args(VitalName)
COUNTERS = (
    "visits",
    "pageviews",
    "entries",
    "exits",
    "bounces",
    "time_on_page_ms",
    "time_on_page_count",
    "js_errors",
    "api_errors",
    "rage_clicks",
    "dead_clicks",
    "error_clicks",
    "mouse_thrashes",
    "sessions_with_frustration",
)
_SIGNAL_COUNTER = {
    "rage-click": "rage_clicks",
    "dead-click": "dead_clicks",
    "error-click": "error_clicks",
    "mouse-thrash": "mouse_thrashes",
}
_ERROR_COUNTER = {"console-error": "js_errors", "network-error": "api_errors"}
_LIMIT_CLOSES = frozenset({"max-duration", "max-events", "max-bytes"})
DELTA_VERSION = 1


def hour_bucket(epoch_ms: int) -> int:
    return epoch_ms - epoch_ms % HOUR_MS


def delta_id_for(window_id: str, url: str, bucket: int) -> str:
    digest = hashlib.blake2b(f"{window_id}\x1f{url}\x1f{bucket}".encode(), digest_size=16)
    return digest.hexdigest()


class UrlDelta(msgspec.Struct, omit_defaults=True):
    """One session's contribution to one URL (or `*`) in one hour bucket. A msgspec Struct: made
    by the thousand per flush and decoded from the topic by every worker, where a dataclass cost
    twice as much; encoded for the topic without its zero counters."""

    delta_id: str
    bucket: int
    url: str
    visits: int = 0
    pageviews: int = 0
    entries: int = 0
    exits: int = 0
    bounces: int = 0
    time_on_page_ms: int = 0
    time_on_page_count: int = 0
    js_errors: int = 0
    api_errors: int = 0
    rage_clicks: int = 0
    dead_clicks: int = 0
    error_clicks: int = 0
    mouse_thrashes: int = 0
    sessions_with_frustration: int = 0
    # Decoding checks the metric names and that each has samples (msgspec copies the empty default).
    vitals: dict[VitalName, Annotated[list[float], msgspec.Meta(min_length=1)]] = {}

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"v": DELTA_VERSION, "delta_id": self.delta_id, "bucket": self.bucket, "url": self.url}
        for name in COUNTERS:
            out[name] = getattr(self, name)
        out["vitals"] = {m: list(v) for m, v in self.vitals.items() if v}
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "UrlDelta":
        try:
            delta = cls(delta_id=str(data["delta_id"]), bucket=int(data["bucket"]), url=str(data["url"]))
        except KeyError as exc:
            raise ValueError(f"url delta is missing {exc.args[0]!r}: {data!r:.200}") from None
        for name in COUNTERS:
            setattr(delta, name, int(data.get(name, 0)))
        vitals = data.get("vitals") or {}
        delta.vitals = {m: [float(x) for x in vitals[m]] for m in VITALS if vitals.get(m)}
        return delta


# -- the url-deltas topic ---------------------------------------------------------------------------
# A record holds a batch of deltas, `{"v": 2, "deltas": [...]}`, each delta an object with UrlDelta's
# fields (`to_dict`'s, without "v", and without the counters that are 0 and empty `vitals`): one
# record, one encode and one decode per batch, in C, instead of per delta in Python, which cost
# more than computing the deltas. Format 1, one `to_dict` per record, is still read. Deltas are
# independent (sums, idempotent by id), so a record may hold any of them and needs no key.
BATCH_VERSION = 2
# Deltas per record: ~300 bytes each, so a record stays well within one producer batch.
DELTAS_PER_RECORD = 500


class _DeltaBatch(msgspec.Struct):
    v: int
    deltas: list[UrlDelta]


_batch_encoder = msgspec.json.Encoder()
_batch_decoder = msgspec.json.Decoder(_DeltaBatch)


def encode_delta_records(deltas: list[UrlDelta], max_bytes: int, per_record: int = DELTAS_PER_RECORD) -> list[bytes]:
    """Record values for the url-deltas topic, each at most `max_bytes` unless one delta alone is
    larger (that record is then refused by the broker and dead-lettered, as before)."""
    out: list[bytes] = []
    for start in range(0, len(deltas), per_record):
        _encode_chunk(deltas[start:start + per_record], max_bytes, out)
    return out


def _encode_chunk(chunk: list[UrlDelta], max_bytes: int, out: list[bytes]) -> None:
    data = _batch_encoder.encode(_DeltaBatch(BATCH_VERSION, chunk))
    if len(data) > max_bytes and len(chunk) > 1:
        half = len(chunk) // 2
        _encode_chunk(chunk[:half], max_bytes, out)
        _encode_chunk(chunk[half:], max_bytes, out)
    else:
        out.append(data)


def decode_delta_record(value: bytes) -> list[UrlDelta]:
    """The deltas of one url-deltas record (either format); ValueError when it is malformed."""
    try:
        batch = _batch_decoder.decode(value)
    except msgspec.ValidationError:
        data = orjson.loads(value)  # format 1: one delta (orjson.JSONDecodeError is a ValueError)
        if type(data) is not dict or "deltas" in data:
            raise
        return [UrlDelta.from_dict(data)]
    return batch.deltas


def _visit_finder(visit_urls: list[str], entered: list[int]):
    """Returns a function (url or None, timestamp) -> index of the page visit it belongs to."""
    by_url: dict[str, list[int]] = {}
    for index, url in enumerate(visit_urls):
        by_url.setdefault(url, []).append(index)

    def find(url: Optional[str], timestamp: int) -> int:
        candidates = by_url.get(url) if url is not None else None
        if candidates:
            chosen = candidates[0]
            for index in candidates:
                if entered[index] <= timestamp:
                    chosen = index
            return chosen
        return max(bisect_right(entered, timestamp) - 1, 0)

    return find


_INF = math.inf


def _vital_values(metrics: Any) -> Iterable[tuple[str, float]]:
    if not isinstance(metrics, dict):
        return ()
    found = []
    for name in VITALS:
        value = metrics.get(name)
        if value is None:
            continue
        kind = type(value)
        if kind is float:  # the usual case: finite and non-negative in one comparison (NaN fails it)
            if 0.0 <= value < _INF:
                found.append((name, value))
        elif kind is int or (isinstance(value, (int, float)) and not isinstance(value, bool)):
            value = float(value)
            if value >= 0 and math.isfinite(value):
                found.append((name, value))
    return found


def counts_in_baselines(session: dict[str, Any], exclude_automated: bool = True) -> bool:
    """Whether a closed session feeds the per-URL baselines: sessions that look automated (the
    closed session's `automated` reason) stay out unless the setting lets them in, so a test
    robot hammering /checkout does not set what "normal" is. They are still compared and
    summarized."""
    return not (exclude_automated and session.get("automated"))


def session_deltas(session: dict[str, Any], normalizer: UrlNormalizer) -> list[UrlDelta]:
    """The per-URL deltas of one closed session, plus its site-wide (`*`) delta."""
    window_id = window_id_of(session)
    bucket = hour_bucket(int(session["started_at"]))
    normalize = normalizer.normalize
    pages = [p for p in session.get("pages") or () if p.get("url")]
    visit_urls = [normalize(p["url"]) for p in pages]
    is_continuation = bool(session.get("previous_window_id"))
    is_continued = session.get("close_reason") in _LIMIT_CLOSES

    site = UrlDelta(delta_id_for(window_id, SITE_URL, bucket), bucket, SITE_URL, visits=1)
    per_url: dict[str, UrlDelta] = {}
    visit_deltas: list[UrlDelta] = []
    time_on_pages = 0
    for url, page in zip(visit_urls, pages):
        delta = per_url.get(url)
        if delta is None:
            delta = per_url[url] = UrlDelta(delta_id_for(window_id, url, bucket), bucket, url, visits=1)
        delta.pageviews += 1
        spent = max(int(page.get("time_on_page_ms") or 0), 0)
        delta.time_on_page_ms += spent
        time_on_pages += spent
        delta.time_on_page_count += 1
        visit_deltas.append(delta)

    if pages:
        if not is_continuation:
            visit_deltas[0].entries += 1
            site.entries = 1
        if not is_continued:
            visit_deltas[-1].exits += 1
            site.exits = 1
        if len(pages) == 1 and not is_continuation and not is_continued:
            visit_deltas[0].bounces += 1
            site.bounces = 1
    elif not is_continuation:
        site.entries = 1  # a session without pages still started (and ended) somewhere
        if not is_continued:
            site.exits = 1

    find = _visit_finder(visit_urls, [int(p["entered_at"]) for p in pages]) if pages else None

    vitals_by_visit: dict[Optional[int], dict[str, float]] = {}
    for event in session.get("events") or ():
        kind = event.get("type")
        if kind == "web-vitals":
            counter = None
        else:
            counter = _ERROR_COUNTER.get(kind)
            if counter is None:
                continue  # most events: neither an error nor web vitals
        if find is None:
            index = None
        else:
            url = event.get("url")
            index = find(normalize(url) if url else None, int(event.get("timestamp") or 0))
        if counter is not None:
            setattr(site, counter, getattr(site, counter) + 1)
            if index is not None:
                delta = visit_deltas[index]
                setattr(delta, counter, getattr(delta, counter) + 1)
        else:
            values = vitals_by_visit.get(index)
            if values is None:
                values = vitals_by_visit[index] = {}
            values.update(_vital_values(event.get("metrics")))

    frustrated: set[int] = set()
    for signal in session.get("signals") or ():
        counter = _SIGNAL_COUNTER.get(signal.get("type"))
        if counter is None:
            continue
        site.sessions_with_frustration = 1
        setattr(site, counter, getattr(site, counter) + 1)
        if find is not None:
            url = signal.get("url")
            delta = visit_deltas[find(normalize(url) if url else None, int(signal.get("timestamp") or 0))]
            setattr(delta, counter, getattr(delta, counter) + 1)
            frustrated.add(id(delta))

    site_vitals = site.vitals
    for index, values in vitals_by_visit.items():
        visit_vitals = None if index is None else visit_deltas[index].vitals
        for name, value in values.items():
            if visit_vitals is not None:
                samples = visit_vitals.get(name)
                if samples is None:
                    visit_vitals[name] = [value]
                else:
                    samples.append(value)
            samples = site_vitals.get(name)
            if samples is None:
                site_vitals[name] = [value]
            else:
                samples.append(value)

    for delta in per_url.values():
        if id(delta) in frustrated:
            delta.sessions_with_frustration = 1
    # The site's page figures are the sums over its pages (one pageview and one time per visit).
    site.pageviews = site.time_on_page_count = len(pages)
    site.time_on_page_ms = time_on_pages
    return [*per_url.values(), site]


_counters_of = attrgetter(*COUNTERS)


def merge_rows(deltas: Iterable[UrlDelta]) -> dict[tuple[int, str], tuple[list[int], dict[str, list[float]]]]:
    """Sums deltas per (bucket, url): (counters in COUNTERS order, vital samples per metric)."""
    merged: dict[tuple[int, str], tuple[list[int], dict[str, list[float]]]] = {}
    for delta in deltas:
        key = (delta.bucket, delta.url)
        row = merged.get(key)
        if row is None:
            merged[key] = (list(_counters_of(delta)), {m: list(v) for m, v in delta.vitals.items()})
            continue
        counters, vitals = row
        counters[:] = map(add, counters, _counters_of(delta))
        for metric, values in delta.vitals.items():
            vitals.setdefault(metric, []).extend(values)
    return merged


def merge_deltas(deltas: Iterable[UrlDelta]) -> dict[tuple[int, str], UrlDelta]:
    """Sums deltas per (bucket, url) into UrlDeltas (whose delta_id is empty: merged rows)."""
    return {
        (bucket, url): UrlDelta("", bucket, url, *counters, vitals=vitals)
        for (bucket, url), (counters, vitals) in merge_rows(deltas).items()
    }
