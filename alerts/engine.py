"""The alerting engine: sliding windows per URL and signal, spikes, new errors, one alert each.

Pure: observations in (alerts/observations.py), a clock passed in, alert dicts out. The adapters
choose the clock (wall time on Kafka, event time in the embedded run) and persist the state,
which exports per URL as JSON, so a restarted worker resumes open spikes without re-firing.

Per URL (and the site, `*`), every `step_ms` the window [t - window_ms, t) is evaluated for each
signal: it is *over* when its count reaches `ratio` x the baseline, `min_count` and `min_sessions`.
A spike fires when `n` of the last `m` windows are over (and the cooldown has passed); it stays
open, silent, until `clear_windows` windows in a row are not over, then an all-clear follows and
the cooldown starts. Alerts due in quiet hours are held and sent as one digest when they end.
"""
from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Callable, Iterable, Optional

from replaylens.alerts.baseline import Baseline, history_baseline, poisson_tail
from replaylens.alerts.format import alert_text
from replaylens.alerts.observations import Observation
from replaylens.config.alert_rules import AlertRules

SITE = "*"
SESSIONS_AFFECTED = "sessions-affected"
DEDUP_MS = 2 * 60_000           # a redelivered observation within this is counted once (offsets
                                 # are committed every second or so: redeliveries are recent)
MAX_SESSIONS_PER_BUCKET = 500    # sessions kept per bucket for links (the count stays exact)
MAX_MESSAGES_PER_BUCKET = 50
MAX_PAGES_PER_BUCKET = 200
MAX_KNOWN_ERRORS = 5_000         # distinct error keys remembered per URL (the site: all of them)

BaselineSource = Callable[[str, str, int], Optional[Baseline]]
LinkMaker = Callable[[str, int], str]
# A baseline source may also offer `deferred(url, signal, at_ms)`: its reads that depend on when
# they happen (the aggregates store, which fills as sessions close) done now, the rest returned
# as a function. Most windows are far below any threshold and never need the baseline itself.
DeferredBaseline = Callable[[], Optional[Baseline]]


def _no_baseline(url: str, signal: str, at_ms: int) -> Optional[Baseline]:
    return None


def _plain_link(session_id: str, timestamp_ms: int) -> str:
    return f"{session_id}?t={timestamp_ms}"


def alert_id(*parts: Any) -> str:
    return hashlib.blake2b("\x1f".join(map(str, parts)).encode(), digest_size=12).hexdigest()


@dataclass
class Track:
    """One URL's one signal: recent over-flags, its own history, an open spike, the cooldown."""

    over: list[bool] = field(default_factory=list)
    history: list[int] = field(default_factory=list)
    open: Optional[dict[str, Any]] = None
    clear_streak: int = 0
    cooldown_until: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {"over": list(self.over), "history": list(self.history), "open": self.open,
                "clear_streak": self.clear_streak, "cooldown_until": self.cooldown_until}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Track":
        return cls([bool(x) for x in d.get("over", [])], [int(x) for x in d.get("history", [])],
                   d.get("open"), int(d.get("clear_streak", 0)), int(d.get("cooldown_until", 0)))


@dataclass
class UrlState:
    url: str
    since: int
    evals: int = 0                 # full windows evaluated since `since`
    last_eval: int = 0
    # bucket start -> signal -> {"n": count, "s": {sid: [count, first ts]}, "m": {message: count},
    #                            "e": {error key: [sids]}}
    buckets: dict[int, dict[str, dict[str, Any]]] = field(default_factory=dict)
    seen: dict[str, int] = field(default_factory=dict)            # observation id -> when seen
    tracks: dict[str, Track] = field(default_factory=dict)
    known_errors: dict[str, list[int]] = field(default_factory=dict)  # key -> [first, last, alerted]
    held: list[dict[str, Any]] = field(default_factory=list)      # alerts held in quiet hours

    def empty(self) -> bool:
        return not (self.buckets or self.tracks or self.known_errors or self.held)

    def to_dict(self) -> dict[str, Any]:
        return {"v": 1, "url": self.url, "since": self.since, "evals": self.evals, "last_eval": self.last_eval,
                "buckets": {str(b): sigs for b, sigs in self.buckets.items()}, "seen": self.seen,
                "tracks": {s: t.to_dict() for s, t in self.tracks.items()},
                "known_errors": self.known_errors, "held": self.held}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "UrlState":
        return cls(str(d["url"]), int(d["since"]), int(d.get("evals", 0)), int(d.get("last_eval", 0)),
                   {int(b): sigs for b, sigs in (d.get("buckets") or {}).items()}, dict(d.get("seen") or {}),
                   {s: Track.from_dict(t) for s, t in (d.get("tracks") or {}).items()},
                   {k: list(v) for k, v in (d.get("known_errors") or {}).items()}, list(d.get("held") or []))


@dataclass
class WindowView:
    """What one window holds for one signal of one URL."""

    count: int = 0
    sessions: dict[str, list[int]] = field(default_factory=dict)   # sid -> [count, first ts]
    messages: Counter = field(default_factory=Counter)
    pages: Counter = field(default_factory=Counter)    # site-wide windows: where it happened

    def add(self, cell: dict[str, Any]) -> None:
        self.count += cell["n"]
        for sid, (n, first) in cell["s"].items():
            mine = self.sessions.get(sid)
            if mine is None:
                self.sessions[sid] = [n, first]
            else:
                mine[0] += n
                mine[1] = min(mine[1], first)
        self.messages.update(cell.get("m") or {})
        self.pages.update(cell.get("p") or {})

    @property
    def session_count(self) -> int:
        return len(self.sessions)


class _MergedOnRead:
    """A window view whose sessions, messages and pages come from `merged`, built when first read."""

    merged: WindowView

    @property
    def sessions(self) -> dict[str, list[int]]:
        return self.merged.sessions

    @property
    def messages(self) -> Counter:
        return self.merged.messages

    @property
    def pages(self) -> Counter:
        return self.merged.pages


class _CellsWindow(_MergedOnRead):
    """A window's view of one signal, its count summed at once and the rest (sessions, messages,
    pages: `WindowView.add` of its cells, in their order) merged only when read: most windows of
    most URLs are below the count minimum, and nothing but their count is ever read."""

    def __init__(self) -> None:
        self.cells: list[dict[str, Any]] = []
        self.count = 0

    def add(self, cell: dict[str, Any]) -> None:
        self.cells.append(cell)
        self.count += cell["n"]

    @cached_property
    def merged(self) -> WindowView:
        view = WindowView()
        for cell in self.cells:
            view.add(cell)
        return view

    @property
    def session_count(self) -> int:
        """len(sessions), without merging them."""
        return len(set().union(*(cell["s"] for cell in self.cells)))


class _UnionWindow(_MergedOnRead):
    """The sessions-affected view (`AlertEngine._all_sessions` of the signals' views): its count,
    the distinct sessions, at once; the rest when read."""

    def __init__(self, views: dict[str, _CellsWindow]) -> None:
        self.views = dict(views)
        self.count = len(set().union(*(cell["s"] for view in self.views.values() for cell in view.cells)))

    @cached_property
    def merged(self) -> WindowView:
        return AlertEngine._all_sessions(self.views)

    @property
    def session_count(self) -> int:
        return self.count


class AlertEngine:
    def __init__(self, rules: AlertRules, baselines: BaselineSource = _no_baseline,
                 link: LinkMaker = _plain_link) -> None:
        self.rules = rules
        self.baselines = baselines
        self._deferred: Optional[Callable[[str, str, int], DeferredBaseline]] = getattr(baselines, "deferred", None)
        self.link = link
        self.states: dict[str, UrlState] = {}
        self.evaluated_until: Optional[int] = None
        self.dirty: set[str] = set()
        self.enabled = frozenset(rules.signals)

    def update_rules(self, rules: AlertRules) -> None:
        """Thresholds, signals, quiet hours and the rest take effect at the next evaluation; the
        window layout must stay (config.alert_rules.live_change_refused says so before)."""
        if (rules.window_ms, rules.step_ms) != (self.rules.window_ms, self.rules.step_ms):
            raise ValueError("the window layout (window_ms, step_ms) cannot change on a running engine")
        self.rules = rules
        self.enabled = frozenset(rules.signals)

    # -- input ----------------------------------------------------------------------------------
    def _floor(self, now_ms: int) -> int:
        """The oldest bucket a window still to be evaluated will read: older observations are
        late and count in the current window rather than nowhere."""
        step = self.rules.step_ms
        nxt = (self.evaluated_until + step) if self.evaluated_until is not None else now_ms - now_ms % step + step
        return nxt - self.rules.window_ms

    def observe(self, observations: Iterable[Observation], now_ms: int) -> int:
        """Count observations (redelivered ones once); returns how many were new."""
        step, floor, fresh = self.rules.step_ms, self._floor(now_ms), 0
        for obs in observations:
            state = self.states.get(obs.url)
            if state is None:
                state = self.states[obs.url] = UrlState(obs.url, since=now_ms)
            if obs.obs_id in state.seen:
                continue
            state.seen[obs.obs_id] = now_ms
            at = max(obs.timestamp, floor)
            cell = state.buckets.setdefault(at - at % step, {}).setdefault(
                obs.signal, {"n": 0, "s": {}, "m": {}, "e": {}})
            cell["n"] += 1
            mine = cell["s"].get(obs.session_id)
            if mine is not None:
                mine[0] += 1
                mine[1] = min(mine[1], obs.timestamp)
            elif len(cell["s"]) < MAX_SESSIONS_PER_BUCKET:
                cell["s"][obs.session_id] = [1, obs.timestamp]
            if obs.message and (obs.message in cell["m"] or len(cell["m"]) < MAX_MESSAGES_PER_BUCKET):
                cell["m"][obs.message] = cell["m"].get(obs.message, 0) + 1
            if obs.error_key:
                sids = cell["e"].setdefault(obs.error_key, [])
                if obs.session_id not in sids and len(sids) < MAX_SESSIONS_PER_BUCKET:
                    sids.append(obs.session_id)
                if obs.page:
                    pages = cell.setdefault("ep", {}).setdefault(obs.error_key, {})
                    pages[obs.page] = pages.get(obs.page, 0) + 1
            if obs.page and (obs.page in cell.setdefault("p", {}) or len(cell["p"]) < MAX_PAGES_PER_BUCKET):
                cell["p"][obs.page] = cell["p"].get(obs.page, 0) + 1
            self.dirty.add(obs.url)
            fresh += 1
        return fresh

    # -- the clock ------------------------------------------------------------------------------
    def advance(self, now_ms: int) -> list[dict[str, Any]]:
        """Evaluate every step boundary up to now; returns the alerts to deliver, in order."""
        step = self.rules.step_ms
        end = now_ms - now_ms % step
        if self.evaluated_until is None:
            self.evaluated_until = end - step
        # After a long pause only the last windows matter (older buckets are empty by then).
        start = max(self.evaluated_until + step, end - self._catch_up_steps() * step)
        out: list[dict[str, Any]] = []
        for t in range(start, end + 1, step):
            for url in list(self.states):
                out += self._evaluate(self.states[url], t)
            out += self._digest(t)
            self.evaluated_until = t
        return out

    def _catch_up_steps(self) -> int:
        r = self.rules
        return r.window_ms // r.step_ms + r.m + r.clear_windows

    @property
    def learning_since(self) -> Optional[int]:
        return min((s.since for s in self.states.values()), default=None)

    # -- one URL, one step ----------------------------------------------------------------------
    def _evaluate(self, state: UrlState, t: int) -> list[dict[str, Any]]:
        if state.last_eval >= t:
            return []
        r = self.rules
        views: dict[str, Any] = {}
        errors: dict[str, tuple[str, set[str], Counter]] = {}
        for bucket, signals in state.buckets.items():
            if t - r.window_ms <= bucket < t:
                for signal, cell in signals.items():
                    view = views.get(signal)
                    if view is None:
                        view = views[signal] = _CellsWindow()
                    view.add(cell)
                    for key, sids in (cell.get("e") or {}).items():
                        entry = errors.get(key)
                        if entry is None:
                            entry = errors[key] = (signal, set(), Counter())
                        entry[1].update(sids)
                        entry[2].update((cell.get("ep") or {}).get(key) or {})
        if views:
            views[SESSIONS_AFFECTED] = _UnionWindow(views)
        out: list[dict[str, Any]] = []
        # sessions-affected last: it speaks only when no single signal explains the trouble
        signals = sorted((set(state.tracks) | set(views)) & self.enabled, key=lambda s: (s == SESSIONS_AFFECTED, s))
        for signal in signals:
            track = state.tracks.get(signal)
            if track is None:  # quiet until now, for as long as this engine has been watching
                track = state.tracks[signal] = Track(history=[0] * min(self._watched(state, t), r.history_windows))
            out += self._step_track(state, signal, track, views.get(signal) or _CellsWindow(), t)
        if state.url == SITE:  # "never seen" means anywhere on the site, so the site decides
            out += self._new_errors(state, errors, views, t)
        if t - r.window_ms >= state.since - state.since % r.step_ms:
            state.evals += 1
        state.last_eval = t
        self._prune(state, t)
        self.dirty.add(state.url)
        return self._hold_in_quiet_hours(state, out, t)

    def _watched(self, state: UrlState, t: int) -> int:
        """Full windows this URL could have shown incidents in: since its own first observation,
        or since the engine's, whichever is longer (a page unseen so far had none)."""
        engine_since = self.learning_since
        since = engine_since if engine_since is not None else state.since
        r = self.rules
        engine_windows = (t - r.window_ms - (since - since % r.step_ms)) // r.step_ms + 1
        return max(state.evals, engine_windows, 0)

    @staticmethod
    def _all_sessions(views: dict[str, WindowView]) -> WindowView:
        union = WindowView()
        for signal, view in views.items():
            for sid, (n, first) in view.sessions.items():
                mine = union.sessions.setdefault(sid, [0, first])
                mine[0] += n
                mine[1] = min(mine[1], first)
            union.pages.update(view.pages)
        union.count = len(union.sessions)
        return union

    def _baseline_later(self, url: str, signal: str, track: Track, t: int) -> DeferredBaseline:
        """The baseline of this step, as a function: the source's time-dependent reads happen
        now (so the figures are those of this step whether or not the baseline is needed), the
        arithmetic only when called. The history it reads is this step's until the step ends."""
        min_windows = self.rules.min_history_windows
        if self._deferred is not None:
            source = self._deferred(url, signal, t)
            return lambda: source() or history_baseline(track.history, min_windows)
        return lambda: self.baselines(url, signal, t) or history_baseline(track.history, min_windows)

    def _step_track(self, state: UrlState, signal: str, track: Track, view: WindowView,
                    t: int) -> list[dict[str, Any]]:
        r = self.rules
        baseline_later = self._baseline_later(state.url, signal, track, t)
        # Only a window past the count and session minimums can be over: the baseline is worked
        # out for it, or for an alert (below), not for every quiet window.
        candidate = view.count >= r.minimum(signal) and view.session_count >= r.min_sessions
        baseline = baseline_later() if candidate else None
        over = (baseline is not None and view.count >= r.ratio * baseline.value
                and poisson_tail(view.count, baseline.value) <= r.max_p_value)
        # One flag per step; N-of-M reads every k-th flag: the last m DISJOINT windows ending now
        # (overlapping windows would let one burst fill all m).
        k = r.window_ms // r.step_ms
        flags = track.over
        flags.append(over)
        del flags[:-((r.m - 1) * k + 1)]
        windows_over = sum(flags[::-k][:r.m])
        out: list[dict[str, Any]] = []
        if track.open is not None:
            if over:
                track.clear_streak = 0
                track.open["peak"] = max(track.open.get("peak", 0), view.count)
            else:
                track.clear_streak += 1
                if track.clear_streak >= r.clear_windows:
                    baseline = baseline if candidate else baseline_later()
                    out.append(self._all_clear(state.url, signal, track, view, baseline, t))
                    track.open, track.clear_streak, track.over = None, 0, []
                    track.cooldown_until = t + r.cooldown_ms
        elif windows_over >= r.n and t >= track.cooldown_until and not self._explained(state, signal):
            baseline = baseline if candidate else baseline_later()
            alert = self._spike(state.url, signal, track, view, baseline, t, windows_over)
            track.open = {"alert_id": alert["alert_id"], "fired_at": t, "peak": view.count,
                          "baseline": alert["baseline"]}
            track.clear_streak, track.over = 0, []
            out.append(alert)
        full = t - r.window_ms >= state.since - state.since % r.step_ms  # a window before `since` is partial
        # An open spike must not raise its own baseline. (Over windows before it fires are kept:
        # leaving them out would bias the baseline low; the median absorbs them.)
        if track.open is None and full:
            track.history.append(view.count)
            del track.history[:-r.history_windows]
        if track.open is None and t >= track.cooldown_until and not any(track.history) and not view.count:
            del state.tracks[signal]
        return out

    @staticmethod
    def _explained(state: UrlState, signal: str) -> bool:
        """A sessions-affected spike while a signal of the same URL has an open spike says nothing new."""
        return signal == SESSIONS_AFFECTED and any(
            t.open is not None for s, t in state.tracks.items() if s != SESSIONS_AFFECTED)

    # -- alerts ---------------------------------------------------------------------------------
    def _common(self, url: str, signal: str, view: WindowView, t: int) -> dict[str, Any]:
        r = self.rules
        worst = sorted(view.sessions.items(), key=lambda kv: (-kv[1][0], kv[1][1], kv[0]))
        common = {
            "url": url, "signal": signal, "at": t,
            "window": {"start": t - r.window_ms, "end": t, "ms": r.window_ms},
            "current": view.count, "sessions_affected": len(view.sessions),
            "sessions": [{"session_id": sid, "count": n, "timestamp": first, "link": self.link(sid, first)}
                         for sid, (n, first) in worst[: r.max_sessions_linked]],
            "top_messages": [{"message": m, "count": c} for m, c in view.messages.most_common(r.max_messages)],
        }
        if url == SITE:  # where on the site it happened
            common["pages"] = [{"url": u, "count": c} for u, c in view.pages.most_common(r.max_messages)]
        return common

    @staticmethod
    def _baseline_fields(baseline: Optional[Baseline], current: int) -> dict[str, Any]:
        if baseline is None:
            return {"baseline": None, "baseline_basis": None, "baseline_sample": 0, "ratio": None}
        ratio = round(current / baseline.value, 2) if baseline.value > 0 else None
        return {"baseline": round(baseline.value, 3), "baseline_basis": baseline.basis,
                "baseline_sample": baseline.sample, "ratio": ratio}

    def _spike(self, url: str, signal: str, track: Track, view: WindowView, baseline: Optional[Baseline],
               t: int, windows_over: int) -> dict[str, Any]:
        alert = {"type": "spike", "alert_id": alert_id("spike", url, signal, t), **self._common(url, signal, view, t),
                 **self._baseline_fields(baseline, view.count),
                 "windows_over": windows_over, "windows_considered": self.rules.m}
        alert["text"] = alert_text(alert)
        return alert

    def _all_clear(self, url: str, signal: str, track: Track, view: WindowView, baseline: Optional[Baseline],
                   t: int) -> dict[str, Any]:
        opened = track.open or {}
        alert = {"type": "all-clear", "alert_id": alert_id("all-clear", url, signal, t),
                 "spike_id": opened.get("alert_id"), "spike_started_at": opened.get("fired_at"),
                 "peak": opened.get("peak"), **self._common(url, signal, view, t),
                 **self._baseline_fields(baseline, view.count)}
        alert["text"] = alert_text(alert)
        return alert

    def _new_errors(self, state: UrlState, errors: dict[str, tuple[str, set[str], Counter]],
                    views: dict[str, WindowView], t: int) -> list[dict[str, Any]]:
        """An error message or failing endpoint first seen in the last m windows (after the
        learning stretch) that hits new_error_min_sessions sessions: one alert, then it is known."""
        r = self.rules
        since = self.learning_since
        learning = since is None or t - since < r.new_error_learning_ms
        out = []
        for key, (signal, sids, pages) in sorted(errors.items()):
            known = state.known_errors.get(key)
            if known is None:
                known = state.known_errors[key] = [t, t, int(learning)]
            known[1] = t
            if known[2] or t - known[0] >= r.window_ms * r.m or len(sids) < r.new_error_min_sessions:
                continue
            known[2] = 1
            view = WindowView(count=len(sids))
            source = views.get(signal) or WindowView()
            view.sessions = {sid: v for sid, v in source.sessions.items() if sid in sids}
            page = pages.most_common(1)[0][0] if pages else SITE
            alert = {"type": "new-error", "alert_id": alert_id("new-error", key, t),
                     **self._common(page, signal, view, t), "error_key": key,
                     "pages": [{"url": u, "count": c} for u, c in pages.most_common(self.rules.max_messages)],
                     **self._baseline_fields(None, view.count), "first_seen": known[0]}
            alert["top_messages"] = [{"message": key.split(": ", 1)[-1], "count": len(sids)}]
            alert["text"] = alert_text(alert)
            out.append(alert)
        return out

    # -- quiet hours ----------------------------------------------------------------------------
    def _hold_in_quiet_hours(self, state: UrlState, alerts: list[dict[str, Any]], t: int) -> list[dict[str, Any]]:
        quiet = self.rules.quiet_hours
        if alerts and quiet is not None and quiet.quiet_at(t):
            state.held += alerts
            return []
        return alerts

    def _digest(self, t: int) -> list[dict[str, Any]]:
        quiet = self.rules.quiet_hours
        if quiet is None or quiet.quiet_at(t):
            return []
        held = []
        for state in self.states.values():
            if state.held:
                held += state.held
                state.held = []
                self.dirty.add(state.url)
        if not held:
            return []
        held.sort(key=lambda a: (a["at"], a["url"], a["signal"]))
        digest = {"type": "digest", "alert_id": alert_id("digest", t, *(a["alert_id"] for a in held)),
                  "url": SITE, "signal": "digest", "at": t, "count": len(held), "alerts": held}
        digest["text"] = alert_text(digest)
        return [digest]

    # -- housekeeping and persistence -----------------------------------------------------------
    def _prune(self, state: UrlState, t: int) -> None:
        r = self.rules
        oldest_needed = t + r.step_ms - r.window_ms
        for bucket in [b for b in state.buckets if b < oldest_needed]:
            del state.buckets[bucket]
        if state.seen and t - min(state.seen.values()) >= DEDUP_MS:  # (most steps: none expired)
            state.seen = {k: at for k, at in state.seen.items() if t - at < DEDUP_MS}
        known = {k: v for k, v in state.known_errors.items() if t - v[1] < r.known_error_ttl_ms}
        if len(known) > MAX_KNOWN_ERRORS:  # keep the state bounded: forget the longest unseen
            known = dict(sorted(known.items(), key=lambda kv: kv[1][1])[-MAX_KNOWN_ERRORS:])
        state.known_errors = known
        if state.empty() and not state.seen:
            del self.states[state.url]

    def drain_dirty(self) -> set[str]:
        dirty, self.dirty = self.dirty, set()
        return dirty

    def export_state(self, url: str) -> Optional[dict[str, Any]]:
        """The URL's state as JSON-ready data, or None when it has none (a tombstone)."""
        state = self.states.get(url)
        return None if state is None else state.to_dict()

    def import_state(self, data: dict[str, Any]) -> None:
        state = UrlState.from_dict(data)
        self.states[state.url] = state
        if state.last_eval and (self.evaluated_until is None or state.last_eval > self.evaluated_until):
            self.evaluated_until = state.last_eval

    def forget(self, urls: Iterable[str]) -> None:
        for url in urls:
            self.states.pop(url, None)
            self.dirty.discard(url)
