"""Logs carry no event contents: reasons and origins, never message bytes or field values.

An exception's message may quote what it choked on (UnicodeDecodeError's repr holds the whole
byte string, pydantic prints `input_value=...`, a KeyError is the key), and Faust logs a crashed
agent with `%r` of the exception. So every log record of the process is rewritten as it is made
(a record factory, whatever handlers Faust or mode install later):

- an exception (in `exc_info`, the message or the arguments) keeps its type and its traceback's
  frames (file, line, function, source line: code, not data) but not its message;
- bytes, dicts (decoded events) and Kafka messages/events among the arguments are replaced by
  their size or their origin (topic, partition, offset).

Strings among the arguments pass: our own log calls give reasons and origins only.
"""
from __future__ import annotations

import logging
import traceback
from types import TracebackType
from typing import Any, Callable, Optional

WITHHELD = "details withheld: they may quote event contents"
_installed: Optional[Callable[..., logging.LogRecord]] = None


def exception_summary(exc: BaseException) -> str:
    return f"{type(exc).__module__}.{type(exc).__qualname__} ({WITHHELD})"


def safe_traceback(exc: BaseException) -> str:
    """The traceback of `exc` and of its causes, frames only, no exception messages."""
    chain: list[BaseException] = []
    seen: set[int] = set()
    current: Optional[BaseException] = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        chain.append(current)
        current = current.__cause__ or (None if current.__suppress_context__ else current.__context__)
    parts: list[str] = []
    for i, e in enumerate(reversed(chain)):
        if i:
            parts.append("\nThe above exception led to the following one:\n\n")
        parts.append("Traceback (most recent call last):\n")
        tb: Optional[TracebackType] = e.__traceback__
        parts.extend(traceback.format_tb(tb) if tb is not None else [])
        parts.append(exception_summary(e) + "\n")
    return "".join(parts).rstrip("\n")


def _origin_of(value: Any) -> Optional[str]:
    """Kafka messages (aiokafka records, Faust messages and events) by their origin."""
    message = getattr(value, "message", value)
    if all(hasattr(message, a) for a in ("topic", "partition", "offset", "value")):
        return f"<message {message.topic}[{message.partition}]@{message.offset}>"
    return None


def safe_arg(value: Any) -> Any:
    if isinstance(value, BaseException):
        return exception_summary(value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return f"<{len(value)} bytes withheld>"
    if isinstance(value, dict):
        return f"<mapping of {len(value)} keys withheld>"
    origin = _origin_of(value)
    return value if origin is None else origin


def redact_record(record: logging.LogRecord) -> logging.LogRecord:
    if record.exc_info and record.exc_info[1] is not None:
        record.exc_text = safe_traceback(record.exc_info[1])
        record.exc_info = None
    if not isinstance(record.msg, str):
        record.msg = str(safe_arg(record.msg))
    if isinstance(record.args, tuple):
        record.args = tuple(safe_arg(a) for a in record.args)
    elif isinstance(record.args, dict):
        if isinstance(record.msg, str) and "%(" in record.msg:  # "%(name)s" style: keys are the format's
            record.args = {k: safe_arg(v) for k, v in record.args.items()}
        else:  # one dict argument, logging unwrapped it
            record.args = (safe_arg(record.args),)
    return record


class NoEventContents(logging.Filter):
    """The same rewriting as a handler filter, for handlers of another logging set-up."""

    def filter(self, record: logging.LogRecord) -> bool:
        redact_record(record)
        return True


def install_log_redaction() -> None:
    """Rewrite every log record of this process as it is created (idempotent)."""
    global _installed
    if _installed is not None:
        return
    make = logging.getLogRecordFactory()

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        return redact_record(make(*args, **kwargs))

    _installed = make
    logging.setLogRecordFactory(factory)


def uninstall_log_redaction() -> None:
    """For tests: back to the record factory there was before."""
    global _installed
    if _installed is not None:
        logging.setLogRecordFactory(_installed)
        _installed = None
