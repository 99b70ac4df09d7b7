"""Detection folded into each open session window as its events arrive. Pure.

Closing a session used to run signals, pages, context and automation detection over all its
events decoded again; now each window keeps a `Detection` that `Sessionizer.add` feeds every
event it buffers (the msgspec struct ingest already decoded, or the event's JSON when ingest kept
none), and closing only finishes it. The fold gives exactly what `detect_signals`, `page_visits`,
`session_context` and `automation_evidence` give over the window's events sorted by (time,
arrival), because it only folds events that arrive in that order:
- signals: every scan of `signals.py` looks a bounded time ahead of a click (error, answer, retry,
  highlight, rage burst), so a click is decided once the stream has passed that horizon, and the
  rest when the window closes (its last event's time is then known);
- pages: the one-pass clock of `page_visits`;
- context: which event last carried each context field (the value is read from the decoded event
  at close, so it is the event's own JSON);
- automation: the first evidence in order.
A window whose order changed (an event older than the last folded, a merge of two windows, events
moved out by a session-end), one resumed from the state topic, or one whose fold raised (data the
detectors refuse: closing then raises the same way and dead-letters it) is `broken`, and closing
detects over its decoded events as before (tests/test_detection.py holds both to the same result).
"""
from __future__ import annotations

from typing import Any, Optional

import orjson

from replaylens.schemas.events import FRUSTRATION_TYPES
from replaylens.streams import pages as _pages
from replaylens.streams.signals import (
    RECORDER_MARKERS, SignalRules, _ANSWERS, _ERRORS, _MAX_SELECTION_MS, _dead_by_response, _error_detail,
    _is_focus_click, _is_plain_text, _is_text_field, _repeats, _signal, _target, _target_key, automation_marker,
    event_automation, is_toggle)

CONTEXT_FIELDS = ("user", "org", "device", "location")
# Kinds page_visits changes its hidden/idle state on (custom markers, user actions).
_PAGE_MARKS = _pages._USER_ACTIONS | {"custom"}
# Kinds the signal rules look at: clicks, highlights, sent signals, and what answers a click.
_SIGNAL_KINDS = frozenset({"click", "highlight"}) | FRUSTRATION_TYPES | _ANSWERS
# Swapped strings (ingest's masking on the bytes) that detection reads: an event with one of these
# swapped is folded from its masked JSON, not from the struct decoded before masking.
_READ_BY_DETECTION = frozenset({"url", "text", "message", "request_url", "node_id", "double_click", "response",
                                "duration_ms", "selector", "type", "tag", "role", "status", "method"})


def struct_is_exact(swaps: list[tuple[str, str, str]]) -> bool:
    """True when an event's decoded struct says what detection reads of its buffered JSON: the
    masking swaps done on its bytes (key, value, masked value) touch none of those fields."""
    return not swaps or not any(key in _READ_BY_DETECTION for key, _v, _m in swaps)


class Detection:
    """Pages, signals, context and automation of one window, folded event by event in order."""

    __slots__ = ("rules", "n", "last", "broken", "visits", "current", "since", "hidden_ms", "idle_ms", "count",
                 "hidden", "idle", "hints", "automated", "agents", "sig", "_result")

    def __init__(self, rules: SignalRules) -> None:
        self.rules = rules
        self.n = 0  # events folded; the next one's position in the window
        self.last = -(2**63)  # time of the last event folded
        self.broken = False
        # page_visits' clock (streams/pages.py)
        self.visits: list[dict[str, Any]] = []
        self.current: Optional[dict[str, Any]] = None
        self.since = self.hidden_ms = self.idle_ms = self.count = 0
        self.hidden = self.idle = False
        self.hints = [-1, -1, -1, -1]  # position of the last event with each CONTEXT_FIELDS value
        self.automated: Optional[str] = None
        self.agents: Optional[set[str]] = None  # user agents already searched (dict events only)
        self.sig: Optional[_Signals] = None  # made by the first click, highlight or sent signal
        self._result: Optional[tuple] = None

    # -- folding ----------------------------------------------------------------------------
    def fold(self, ts: int, kind: str, decoded: Any, text: str) -> None:
        """Fold the next buffered event: `decoded` is its struct from ingest (None: read `text`).
        This runs once per event: the struct's case is written out in one function."""
        if self.broken:
            return
        if ts < self.last:
            self.break_()
            return
        self.last = ts
        try:
            if decoded is None:
                self._fold_dict(ts, kind, orjson.loads(text))
                self.n += 1
                return
            ev, pos = decoded, self.n
            # page_visits' step (streams/pages.py)
            current = self.current
            if current is None or kind == "navigate":
                self._page_start(ts, ev.url)
                current = self.current
            if current is not None:
                since = self.since
                if ts > since:
                    if self.hidden:
                        self.hidden_ms += ts - since
                    elif self.idle:
                        self.idle_ms += ts - since
                    self.since = ts
                self.count += 1
            if kind in _PAGE_MARKS:
                self._mark(kind, ev.name)
            hints = self.hints
            if ev.user is not None:
                hints[0] = pos
            if ev.org is not None:
                hints[1] = pos
            if ev.device is not None:
                hints[2] = pos
            if ev.location is not None:
                hints[3] = pos
            if kind in _SIGNAL_KINDS:
                sig = self.sig
                if kind == "click":
                    (sig or self._signals()).click(pos, ts, _struct_click(ev))
                elif kind == "highlight":
                    (sig or self._signals()).highlight(ts, ev.properties)
                elif kind in FRUSTRATION_TYPES:
                    (sig or self._signals()).sent.append(pos)
                elif sig is not None and sig.open:
                    if kind in _ERRORS:
                        sig.error(pos, ts)
                    if kind != "custom" or ev.name not in RECORDER_MARKERS:
                        sig.answer(ts)
                if kind == "console-error" and self.automated is None:
                    err = ev.error
                    marker = automation_marker(err.message if err is not None else None)
                    if marker:
                        self.automated = f"console output mentions {marker}"
        except Exception:  # noqa: BLE001 - data a detector refuses: closing detects (and fails) as before
            self.break_()
            return
        self.n += 1

    def break_(self) -> None:
        """Order changed (or the fold failed): closing detects over the decoded events instead."""
        self.broken = True
        self.visits, self.current, self.sig = [], None, None

    def _fold_dict(self, ts: int, kind: str, ev: dict[str, Any]) -> None:
        """`fold` of an event ingest kept no struct of: its decoded JSON."""
        ev["timestamp"] = ts  # as closing sets it
        pos = self.n
        get = ev.get
        if self.current is None or kind == "navigate":
            self._page_start(ts, get("url"))
        if self.current is not None:
            since = self.since
            if ts > since:
                if self.hidden:
                    self.hidden_ms += ts - since
                elif self.idle:
                    self.idle_ms += ts - since
                self.since = ts
            self.count += 1
        if kind in _PAGE_MARKS:
            self._mark(kind, get("name"))
        hints = self.hints
        for i, name in enumerate(CONTEXT_FIELDS):
            if get(name) is not None:
                hints[i] = pos
        if self.automated is None:
            if self.agents is None:
                self.agents = set()
            self.automated = event_automation(ev, self.agents)
        sig = self.sig
        if kind == "click":
            self._signals().click(pos, ts, ev)
        elif kind == "highlight":
            self._signals().highlight(ts, get("properties"))
        elif kind in FRUSTRATION_TYPES:
            self._signals().sent.append(pos)
        elif sig is not None and sig.open and kind in _SIGNAL_KINDS:
            if kind in _ERRORS:
                sig.error(pos, ts)
            if kind != "custom" or get("name") not in RECORDER_MARKERS:
                sig.answer(ts)

    def _signals(self) -> "_Signals":
        sig = self.sig
        if sig is None:
            sig = self.sig = _Signals(self.rules)
        return sig

    def _page_start(self, at: int, url: Any) -> None:
        """page_visits: a navigate (or the first event with a URL) opens a visit."""
        if url:
            current = self.current
            if current is not None:
                _pages._close(current, self.since, self.hidden, self.idle, self.hidden_ms, self.idle_ms,
                              self.count, at)
            self.current = {"url": url, "entered_at": at, "left_at": at, "time_on_page_ms": 0,
                            "event_count": 0, "hidden_ms": 0, "idle_ms": 0}
            self.visits.append(self.current)
            self.since, self.hidden_ms, self.idle_ms, self.count = at, 0, 0, 0

    def _mark(self, kind: str, name: Any) -> None:
        """page_visits: recorder markers and user actions end or start hidden and idle time."""
        if kind == "custom":
            if name == _pages.HIDDEN_STARTS:
                self.hidden = True
            elif name == _pages.HIDDEN_ENDS:
                self.hidden = False
            elif name == _pages.IDLE_STARTS:
                self.idle = True
            elif name == _pages.IDLE_ENDS:
                self.idle = False
        else:  # a user action: someone is there, looking
            self.hidden = self.idle = False

    # -- closing ----------------------------------------------------------------------------
    def usable(self, rules: SignalRules, events: int) -> bool:
        """Whether `finish` gives what detecting over the window's `events` sorted would."""
        return not self.broken and self.n == events and self.rules == rules

    def finish(self, events: list[dict[str, Any]]) -> tuple[list, list, dict, Optional[str]]:
        """(signals, pages, context, automated) of the window, whose events decoded in order are
        `events` (the context's values are read from them)."""
        if self._result is None:
            last = events[-1]["timestamp"]
            signals = self.sig.finish(last, events) if self.sig is not None else []
            visits = self.visits
            if self.current is not None:
                _pages._close(self.current, self.since, self.hidden, self.idle, self.hidden_ms, self.idle_ms,
                              self.count, last)
            self._result = (signals, visits, self.automated)
            first = True
        else:
            first = False
        signals, visits, automated = self._result
        if not first:  # built again (tests): fresh dicts, as detecting again would give
            signals, visits = [dict(s) for s in signals], [dict(v) for v in visits]
        context = {}
        for name, at in zip(CONTEXT_FIELDS, self.hints):
            found = None
            while at >= 0:  # the reverse search of session_context, from the last event that has one
                value = events[at].get(name)
                if value:
                    found = value
                    break
                at -= 1
            context[name] = found
        return list(signals), list(visits), context, automated


BROKEN = Detection(SignalRules())
BROKEN.broken = True  # shared by windows that detect at close (merged, resumed from state)


def _struct_click(ev: Any) -> dict[str, Any]:
    """What signals.py reads of a click, from its ingest struct, as its decoded JSON gives it (an
    absent field and a null one read alike)."""
    t = ev.target
    return {"url": ev.url, "target": None if t is None else {"selector": t.selector, "text": t.text, "type": t.type},
            "properties": ev.properties}


class _Click:
    """What the signal rules still need of one click (its signal is made at close, from the
    decoded event at `pos`, as detect_signals makes it)."""

    __slots__ = ("pos", "ts", "key", "error", "in_burst", "quiet", "text_field", "by_response", "sel", "retried",
                 "retry")

    def __init__(self, pos: int, ts: int, ev: dict[str, Any], key: tuple, rules: SignalRules) -> None:
        self.pos, self.ts, self.key = pos, ts, key
        self.error = -1  # position of the first error within the error window
        self.in_burst: Optional[bool] = None  # None until its target's rage bursts are settled past it
        self.quiet = _is_focus_click(ev) or is_toggle(_target(ev))  # never dead
        self.text_field = _is_text_field(ev)  # a burst starting here selects text
        response = (ev.get("properties") or {}).get("response")
        # The response rule's answer; None: the retry rule decides.
        self.by_response = _dead_by_response(response, rules) if isinstance(response, dict) else None
        self.sel = False  # starts or ends a text selection (_selects_text)
        self.retried = False
        self.retry: Optional[bool] = None  # _dead_by_retry's answer once an answer ended its scan


class _Group:
    """The clicks on one target (signals._target_key), for rage bursts."""

    __slots__ = ("key", "order", "pending", "doubles")

    def __init__(self, key: tuple, order: int) -> None:
        self.key = key  # the clicks of the group share this tuple
        self.order = order  # position of its first click: rage signals of equal time keep this order
        self.pending: list[_Click] = []  # the greedy burst search's clicks from its current start
        self.doubles: Optional[list[tuple[int, int]]] = None  # (position, time) of double clicks on plain text


class _Signals:
    """`detect_signals` as a fold. Signals found are kept as positions (made at close from the
    decoded events), with what reproduces the original's order at equal times: sent signals,
    then rage bursts (by target, then start), then clicks' own signals (by click)."""

    __slots__ = ("rules", "sent", "rage", "dead", "errors", "highlights", "open", "err_from", "ans_from", "groups",
                 "bursts", "horizon")

    def __init__(self, rules: SignalRules) -> None:
        self.rules = rules
        self.sent: list[int] = []  # positions of signals the source sent
        self.rage: list[tuple[int, int, int]] = []  # (target's order, first click's position, clicks)
        self.dead: list[int] = []  # positions of dead clicks
        self.errors: list[tuple[int, int]] = []  # (click's position, its error's position)
        self.highlights: list[tuple[int, int]] = []  # (time, end) within the selection look-back
        self.open: list[_Click] = []  # clicks not decided yet, in order
        self.err_from = self.ans_from = 0
        self.groups: dict[tuple, _Group] = {}
        self.bursts: list[tuple[_Group, list[_Click]]] = []  # settled, waiting for the selection check
        # Past this much time after a click, every scan about it has ended (and the dead rule's
        # "last event more than dead_window later" holds).
        self.horizon = max(rules.error_window_ms, rules.rage_window_ms, rules.dead_retry_window_ms,
                           rules.dead_window_ms)

    # The scans of signals.py, each over the events after a click within a window of it: the
    # first error (_error_after), the first answer or a retry (_dead_by_retry), highlights
    # around it (_selects_text). The first error or answer ends the scan of every click before
    # it: `err_from` and `ans_from` index the open clicks no error or answer has reached yet.
    def error(self, pos: int, ts: int) -> None:
        open_ = self.open
        for c in open_[self.err_from:]:
            if ts - c.ts <= self.rules.error_window_ms:
                c.error = pos
        self.err_from = len(open_)

    def answer(self, ts: int) -> None:
        r = self.rules
        open_ = self.open
        for c in open_[self.ans_from:]:
            c.retry = (c.retried and ts - c.ts > r.dead_window_ms) if ts - c.ts <= r.dead_retry_window_ms \
                else c.retried
        self.ans_from = len(open_)

    def highlight(self, ts: int, props: Any) -> None:
        r = self.rules
        end = ts + int((props or {}).get("duration_ms") or 0)
        for c in reversed(self.open):
            if ts - c.ts > r.rage_window_ms:
                break
            if c.ts <= end + r.rage_window_ms:
                c.sel = True
        self.highlights.append((ts, end))

    def click(self, pos: int, ts: int, ev: dict[str, Any]) -> None:
        r = self.rules
        key = _target_key(ev)
        open_ = self.open
        for c in open_[self.ans_from:]:  # a retry: the same target clicked again before any answer
            if c.key == key and ts - c.ts <= r.dead_retry_window_ms:
                c.retried = True
        group = self.groups.get(key)
        if group is None:
            group = self.groups[key] = _Group(key, -1)
        if (ev.get("properties") or {}).get("double_click"):  # one gesture: not a click of its own
            if _is_plain_text(ev):
                if group.doubles is None:
                    group.doubles = []
                group.doubles.append((pos, ts))
            return
        if open_ and ts - open_[0].ts > self.horizon:
            self._decide_until(ts)
        c = _Click(pos, ts, ev, group.key, r)
        highlights = self.highlights
        if highlights:
            lookback = ts - r.rage_window_ms - _MAX_SELECTION_MS
            stale = 0
            while stale < len(highlights) and highlights[stale][0] < lookback:
                stale += 1
            del highlights[:stale]
            c.sel = any(ts <= end + r.rage_window_ms for _start, end in highlights)
        open_.append(c)
        if group.order < 0:
            group.order = pos
        self._settle(group, ts)
        group.pending.append(c)

    def _decide_until(self, now: int) -> None:
        """Decide the clicks whose every scan `now` is past (keeps the open clicks few)."""
        open_ = self.open
        done = 0
        for c in open_:
            if now - c.ts <= self.horizon:
                break
            if c.in_burst is None:  # its target's bursts are settled only as far as its clicks asked
                self._settle(self.groups[c.key], now)
            self._decide(c, now)
            done += 1
        del open_[:done]
        self.err_from = max(0, self.err_from - done)
        self.ans_from = max(0, self.ans_from - done)

    def _settle(self, group: _Group, now: Optional[int]) -> None:
        """The greedy search of `_rage_clicks` for the starts whose window `now` has passed (all,
        with None: the window closed)."""
        r = self.rules
        pending = group.pending
        while pending and (now is None or now - pending[0].ts > r.rage_window_ms):
            first_ts = pending[0].ts
            count = 1
            while count < len(pending) and pending[count].ts - first_ts <= r.rage_window_ms:
                count += 1
            if count >= r.rage_count:
                burst = pending[:count]
                del pending[:count]
                for c in burst:
                    c.in_burst = True
                self.bursts.append((group, burst))
            else:
                pending.pop(0).in_burst = False
        if not pending and group.doubles and not any(g is group for g, _b in self.bursts):
            group.doubles = None  # bursts to come start at clicks still to come, after these

    def _resolve_bursts(self, now: int, final: bool) -> None:
        """Rage bursts whose selection check can no longer change (`_is_selection`)."""
        r = self.rules
        keep = []
        for group, burst in self.bursts:
            first, last = burst[0], burst[-1]
            if not final and now - last.ts <= r.rage_window_ms:
                keep.append((group, burst))
                continue
            until = last.ts + r.rage_window_ms
            if not (first.text_field or any(c.sel for c in burst)
                    or any(p >= first.pos and t <= until for p, t in group.doubles or ())):
                self.rage.append((group.order, first.pos, len(burst)))
        self.bursts = keep

    def _decide(self, c: _Click, last_ts: int) -> None:
        """`_after_click` for one click, all its scans ended."""
        r = self.rules
        if c.error >= 0:
            self.errors.append((c.pos, c.error))
        elif c.in_burst or c.quiet or c.sel:
            return
        elif c.by_response is not None:
            if c.by_response:
                self.dead.append(c.pos)
        elif last_ts - c.ts > r.dead_window_ms and (c.retry if c.retry is not None else c.retried):
            self.dead.append(c.pos)

    def finish(self, last_ts: int, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The signals of the window closed at `last_ts` (its last event's time), made from its
        decoded `events`: every open scan ends there."""
        r = self.rules
        for group in self.groups.values():
            self._settle(group, None)
        self._resolve_bursts(last_ts, final=True)
        for c in self.open:
            self._decide(c, last_ts)
        self.open = []
        sent = [((events[p]["timestamp"], 0, p), _signal(events[p]["type"], events[p], derived=False))
                for p in sorted(self.sent)]
        derived = [((events[p]["timestamp"], 1, order, p), _signal(
            "rage-click", events[p], count, f"{count} clicks within {r.rage_window_ms} ms"))
            for order, p, count in sorted(self.rage)]
        after = sorted([(p, -1) for p in self.dead] + self.errors)
        derived += [((events[p]["timestamp"], 2, p), _signal(
            "error-click", events[p], detail=_error_detail(events[e])) if e >= 0 else _signal(
            "dead-click", events[p], detail=f"nothing happened within {r.dead_window_ms} ms")) for p, e in after]
        sent_signals = [s for _k, s in sent]
        kept = [(k, d) for k, d in derived if not _repeats(d, sent_signals, r)]
        return [s for _k, s in sorted(sent + kept, key=_first)]


def _first(item: tuple) -> Any:
    return item[0]
