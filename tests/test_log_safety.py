"""Logs carry no event contents (issue 9.8): the record rewriting, on real logging handlers."""
from __future__ import annotations

import io
import logging

import orjson
import pytest
from pydantic import BaseModel

from replaylens.config.log_safety import NoEventContents, install_log_redaction, uninstall_log_redaction
from replaylens.config.settings import Settings
from replaylens.streams.stage import Origin, SessionStage

CARD = "4111 1111 1111 1111"
EMAIL = "leak.me@example.com"


@pytest.fixture
def captured():
    """A logger writing to a string through a standard handler and formatter, redaction on."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    logger = logging.getLogger("test.log_safety")
    logger.addHandler(handler)
    logger.propagate = False
    install_log_redaction()
    yield logger, stream
    uninstall_log_redaction()
    logger.removeHandler(handler)


def crash_of(raw: bytes) -> BaseException:
    stage = SessionStage.from_settings(Settings())
    try:
        stage.process(0, raw, Origin("replay-events", 3, 17, b"s1"), 1_700_000_000_000)
    except Exception as exc:  # noqa: BLE001
        return exc
    return RuntimeError("did not crash")


class Card(BaseModel):
    number: int


def exceptions_quoting_contents() -> list[BaseException]:
    out: list[BaseException] = []
    try:
        (CARD + " \xff " + EMAIL).encode("latin-1").decode("utf-8")
    except UnicodeDecodeError as exc:
        out.append(exc)
    try:
        Card(number=f"{CARD} {EMAIL}")
    except Exception as exc:  # noqa: BLE001 - pydantic prints input_value=...
        out.append(exc)
    try:
        {}[EMAIL]
    except KeyError as exc:
        try:
            raise RuntimeError(f"while handling {CARD}") from exc
        except RuntimeError as chained:
            out.append(chained)
    return out


def test_exceptions_keep_type_and_frames_but_not_their_message(captured):
    logger, stream = captured
    for exc in exceptions_quoting_contents():
        assert CARD in repr(exc) or EMAIL in repr(exc) or CARD in str(exc)  # the leak we prevent
        logger.exception("stage failed at %s", "replay-events[3]@17", exc_info=exc)
        logger.error("Crashed reason=%r", exc)  # Faust's and mode's way
        logger.error(exc)
    text = stream.getvalue()
    assert CARD not in text and EMAIL not in text and "4111" not in text
    assert "UnicodeDecodeError" in text and "ValidationError" in text and "KeyError" in text
    assert "Traceback (most recent call last)" in text and "test_log_safety.py" in text
    assert "replay-events[3]@17" in text


def test_a_real_crash_of_the_stage_is_logged_without_the_message(captured):
    logger, stream = captured
    raw = b'{"session_id":"s1","timestamp":1700000000000,"type":"input-change","value":"%s \xff %s"}' % (
        CARD.encode(), EMAIL.encode())
    exc = crash_of(raw)
    logger.exception("agent crashed", exc_info=exc)
    assert CARD not in stream.getvalue() and EMAIL not in stream.getvalue()


def test_bytes_dicts_and_kafka_messages_among_arguments_are_withheld(captured):
    logger, stream = captured

    class Message:  # the shape of aiokafka's ConsumerRecord and Faust's Message
        topic, partition, offset, value = "replay-events", 2, 99, orjson.dumps({"email": EMAIL})

    event = {"session_id": "s1", "user": {"email": EMAIL}}
    logger.warning("bad message %r", Message.value)
    logger.warning("bad event %s", event)
    logger.warning("bad %s and %s", Message(), event)
    logger.warning("fields %(event)s", {"event": event})
    text = stream.getvalue()
    assert EMAIL not in text
    assert "<message replay-events[2]@99>" in text and "bytes withheld" in text


def test_the_handler_filter_does_the_same_for_other_logging_set_ups():
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(NoEventContents())
    logger = logging.getLogger("test.log_safety.filter")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        logger.exception("x", exc_info=exceptions_quoting_contents()[0])
    finally:
        logger.removeHandler(handler)
    assert EMAIL not in stream.getvalue() and "UnicodeDecodeError" in stream.getvalue()
