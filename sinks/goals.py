"""Where a session got with each goal: set out for it, reached it, or neither (pure).

Goals come from settings (`config/goals.py`); this module compiles them once and follows one
session's events through them.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Iterable, Optional

from replaylens.config.goals import Goal
from replaylens.sinks.describe import Event, of_types, url_path
from replaylens.sinks.vocabulary import CLICK_TYPES, is_submit_click, names, norm


def _pattern(patterns: Iterable[str]) -> Optional[re.Pattern[str]]:
    joined = "|".join(f"(?:{p})" for p in patterns)
    return re.compile(joined, re.I) if joined else None


@dataclass(frozen=True)
class CompiledGoal:
    goal: Goal
    reach_names: frozenset[str]
    reach_urls: Optional[re.Pattern[str]]
    start_names: frozenset[str]
    start_urls: Optional[re.Pattern[str]]
    start_clicks: Optional[re.Pattern[str]]
    # path -> is a goal page / reaches the goal; click label -> starts it (paths and labels repeat)
    _pages: dict[str, tuple[bool, bool]] = field(default_factory=dict, compare=False, hash=False, repr=False)
    _clicks: dict[str, bool] = field(default_factory=dict, compare=False, hash=False, repr=False)

    @classmethod
    def of(cls, goal: Goal) -> "CompiledGoal":
        return cls(goal, names(goal.events), _pattern(goal.url_patterns), names(goal.start_events),
                   _pattern(goal.start_url_patterns), _pattern(goal.start_click_patterns))

    @property
    def name(self) -> str:
        return self.goal.name

    @property
    def reached_on_leaving(self) -> bool:
        """A form goal without a reach event or page is reached by leaving its page after a
        submit that did not fail (a log-in lands on the dashboard)."""
        return not self.reach_urls and self.start_urls is not None

    def _page(self, url: Optional[str]) -> tuple[bool, bool]:
        """(is a goal page, reaches the goal) for a URL, remembered by path."""
        path = url_path(url)
        known = self._pages.get(path)
        if known is None:
            known = (self.start_urls is not None and bool(self.start_urls.search(path)),
                     self.reach_urls is not None and bool(self.reach_urls.search(path)))
            if len(self._pages) >= MEMO_ENTRIES:
                self._pages.clear()
            self._pages[path] = known
        return known

    def is_goal_page(self, url: Optional[str]) -> bool:
        return bool(url) and self._page(url)[0]

    def reached_by(self, event: Event) -> bool:
        etype = event.get("type")
        if etype == "custom":
            return norm(event.get("name")) in self.reach_names
        if etype == "navigate":
            return self._page(event.get("url"))[1]
        return False

    def _click_starts(self, event: Event) -> bool:
        target = event.get("target") or {}
        label = f"{target.get('text') or ''} {target.get('selector') or ''}"
        known = self._clicks.get(label)
        if known is None:
            known = self.start_clicks is not None and bool(self.start_clicks.search(label))
            if len(self._clicks) >= MEMO_ENTRIES:
                self._clicks.clear()
            self._clicks[label] = known
        return known

    def started_by(self, event: Event) -> bool:
        etype = event.get("type")
        if etype == "custom":
            return norm(event.get("name")) in self.start_names
        if etype == "navigate":
            return self.goal.started_by_visit and self.is_goal_page(event.get("url"))
        if etype in CLICK_TYPES and self._click_starts(event):
            return True
        # A click or an edit on the goal's page: the visitor is working on it.
        return etype in INTERACTION_TYPES and self.is_goal_page(event.get("url"))


def compile_goals(goals: Iterable[Goal]) -> tuple[CompiledGoal, ...]:
    return tuple(CompiledGoal.of(g) for g in goals)


@dataclass
class GoalProgress:
    goal: CompiledGoal
    started: Optional[Event] = None
    reached: Optional[Event] = None
    submits: list[Event] = field(default_factory=list)


ERROR_EVENT_TYPES = ("network-error", "console-error")
INTERACTION_TYPES = CLICK_TYPES | {"input-change"}
GOAL_EVENT_TYPES = INTERACTION_TYPES | {"custom", "navigate"}
TRACKED_TYPES = GOAL_EVENT_TYPES | frozenset(ERROR_EVENT_TYPES)  # what track_goals follows
MEMO_ENTRIES = 10_000


class GoalIndex:
    """What each URL, click target and custom event name means for every goal at once,
    remembered: the per-event work of `track_goals` is one dictionary lookup."""

    def __init__(self, goals: tuple[CompiledGoal, ...]) -> None:
        self.goals = goals
        self.none = (False,) * len(goals)
        self._pages: dict[Optional[str], tuple[tuple[bool, ...], tuple[bool, ...]]] = {}
        self._clicks: dict[tuple[Optional[str], Optional[str]], tuple[tuple[bool, ...], bool]] = {}
        self._names: dict[str, tuple[tuple[int, ...], tuple[int, ...]]] = {}

    def page(self, url: Optional[str]) -> tuple[tuple[bool, ...], tuple[bool, ...]]:
        """(is a goal page, reaches the goal) per goal, by URL (its path decides)."""
        known = self._pages.get(url)
        if known is None:
            flags = [g._page(url) if url else (False, False) for g in self.goals]
            known = (tuple(f[0] for f in flags), tuple(f[1] for f in flags))
            _bounded(self._pages)[url] = known
        return known

    def click(self, event: Event) -> tuple[tuple[bool, ...], bool]:
        """(starts the goal, per goal; is a submit) for a click, by its target."""
        target = event.get("target") or {}
        key = (target.get("text"), target.get("selector"))
        known = self._clicks.get(key)
        if known is None:
            known = _bounded(self._clicks)[key] = (tuple(g._click_starts(event) for g in self.goals),
                                                   is_submit_click(event))
        return known

    def name(self, name: Optional[str]) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """(goals it reaches, goals it starts), by index."""
        key = norm(name)
        known = self._names.get(key)
        if known is None:
            known = _bounded(self._names)[key] = (
                tuple(i for i, g in enumerate(self.goals) if key in g.reach_names),
                tuple(i for i, g in enumerate(self.goals) if key in g.start_names))
        return known


def _bounded(memo: dict) -> dict:
    if len(memo) >= MEMO_ENTRIES:
        memo.clear()
    return memo


_INDEXES: dict[int, tuple[tuple[CompiledGoal, ...], GoalIndex]] = {}


def goal_index(goals: tuple[CompiledGoal, ...]) -> GoalIndex:
    known = _INDEXES.get(id(goals))
    if known is None or known[0] is not goals:
        known = _bounded(_INDEXES)[id(goals)] = (goals, GoalIndex(goals))
    return known[1]


def track_goals(events: list[Event], goals: tuple[CompiledGoal, ...]) -> list[GoalProgress]:
    """The goals this session set out for or reached, in the order of the settings."""
    index = goal_index(goals)
    progress = [GoalProgress(g) for g in goals]
    last_error_at = -1
    for event in of_types(events, TRACKED_TYPES):
        etype = event.get("type")
        if etype in ERROR_EVENT_TYPES:
            last_error_at = event["timestamp"]
        elif etype == "custom":
            reaches, starts = index.name(event.get("name"))
            for i in reaches:
                state = progress[i]
                if state.reached is None:
                    state.reached, state.started = event, state.started or event
            for i in starts:
                state = progress[i]
                if state.started is None and state.reached is None:
                    state.started = event
        elif etype == "navigate":
            pages, reaches = index.page(event.get("url"))
            for i, state in enumerate(progress):
                if state.reached is not None:
                    continue
                if reaches[i]:
                    state.reached, state.started = event, state.started or event
                elif pages[i]:
                    if state.started is None and state.goal.goal.started_by_visit:
                        state.started = event
                elif (state.submits and state.goal.reached_on_leaving
                      and last_error_at < state.submits[-1]["timestamp"]):
                    state.reached = event  # left the form's page after a submit that did not fail
        elif etype in INTERACTION_TYPES:
            pages = index.page(event.get("url"))[0]
            clicks, submit = index.click(event) if etype in CLICK_TYPES else (index.none, False)
            if True not in pages and True not in clicks:
                continue  # neither on a goal's page nor a click that starts one: nothing changes
            for i, state in enumerate(progress):
                if state.reached is not None:
                    continue
                if state.started is None and (clicks[i] or pages[i]):
                    state.started = event
                if submit and pages[i] and state.started is not None:
                    state.submits.append(event)
    return [p for p in progress if p.started is not None or p.reached is not None]
