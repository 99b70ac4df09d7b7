"""Shared fixtures. Tests marked @pytest.mark.kafka run against a real broker (tests/kafka_support.py).

Broker tests are never skipped: if the broker cannot start, the fixture fails with the log tail.
"""
from __future__ import annotations

import os
from typing import Awaitable, Callable

import pytest
from hypothesis import settings

from tests.kafka_support import (
    KAFKA_VERSION,
    BrokerStartError,
    broker_start_seconds,
    create_topics,
    ensure_broker,
    unique_topic,
)

TopicFactory = Callable[..., Awaitable[str]]

# CI runs the property tests on a fixed sequence of examples (a red CI must be reproducible, not
# a draw); on a developer's machine they keep exploring new examples every run.
settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")


def _write_line(config: pytest.Config, text: str) -> None:
    """Write to the terminal even while pytest captures output (fixture setup is captured)."""
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    capture = config.pluginmanager.get_plugin("capturemanager")
    if reporter is None:
        print(text)
    elif capture is None:
        reporter.write_line(text)
    else:
        with capture.global_and_fixture_disabled():
            reporter.write_line(text)


@pytest.fixture(scope="session")
def kafka_bootstrap(request: pytest.FixtureRequest) -> str:
    """Bootstrap address of the session's Kafka broker (started on first use)."""
    try:
        bootstrap = ensure_broker()
    except BrokerStartError as exc:
        pytest.fail(f"the Kafka {KAFKA_VERSION} broker could not start:\n{exc}", pytrace=False)
    started = broker_start_seconds()
    how = f"started in {started:.1f}s" if started is not None else "from REPLAYLENS_TEST_BOOTSTRAP"
    _write_line(request.config, f"\nkafka broker {KAFKA_VERSION} at {bootstrap} ({how})")
    return bootstrap


@pytest.fixture
def topic_factory(kafka_bootstrap: str) -> TopicFactory:
    """`await topic_factory("events", partitions=8)` creates a run-unique topic and returns its name."""

    async def make(prefix: str, partitions: int = 8) -> str:
        name = unique_topic(prefix)
        await create_topics(kafka_bootstrap, [name], partitions=partitions)
        return name

    return make


# --- "broker tests: N passed, M failed" summary -------------------------------------------------

_kafka_nodeids: set[str] = set()
_kafka_outcomes: dict[str, str] = {}


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    _kafka_nodeids.update(item.nodeid for item in items if item.get_closest_marker("kafka"))


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.nodeid not in _kafka_nodeids:
        return
    if report.failed:
        _kafka_outcomes[report.nodeid] = "failed"
    elif report.when == "call" and report.passed:
        _kafka_outcomes.setdefault(report.nodeid, "passed")
    elif report.skipped:
        _kafka_outcomes.setdefault(report.nodeid, "skipped")


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:
    if not _kafka_outcomes:
        return
    outcomes = list(_kafka_outcomes.values())
    line = f"broker tests: {outcomes.count('passed')} passed, {outcomes.count('failed')} failed (kafka {KAFKA_VERSION})"
    if outcomes.count("skipped"):
        line += f" -- {outcomes.count('skipped')} SKIPPED, broker tests must not skip"
    terminalreporter.write_line(line)
