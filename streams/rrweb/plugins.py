"""Console and network records: rrweb's plugins (`rrweb/console@1`, `rrweb/network@1`, as rrweb
and posthog-js write them) and PageSpy's console and network entries.

Pure parsers: they return contract fields (`error`, `properties`) and never invent a field the
record does not carry (a request without a method has no method, not "GET").
"""
from __future__ import annotations

import json
from typing import Any, Optional

CONSOLE_PLUGIN = "rrweb/console@1"
NETWORK_PLUGIN = "rrweb/network@1"
ERROR_LEVELS = frozenset({"error", "assert"})
_HTTP_ERROR_MIN = 400
_XHR_DONE = 4  # XMLHttpRequest.DONE: PageSpy reports every request several times, DONE last
_MAX_ARGS = 5
_MAX_MESSAGE_CHARS = 1_000
_MAX_TRACE_LINES = 5


# -- console --------------------------------------------------------------------------------

def console_message(args: Any) -> Optional[str]:
    """rrweb's console plugin stores each argument JSON-stringified: '"Uncaught TypeError: x"'."""
    if isinstance(args, str):
        args = [args]
    if not isinstance(args, list):
        return None
    parts = []
    for arg in args[:_MAX_ARGS]:
        if isinstance(arg, str):
            try:
                decoded = json.loads(arg)
            except ValueError:
                decoded = arg
            arg = decoded if isinstance(decoded, str) else arg
        parts.append(arg if isinstance(arg, str) else json.dumps(arg, default=str))
    message = " ".join(p for p in parts if p).strip()
    return message[:_MAX_MESSAGE_CHARS] or None


def console_error(record: dict) -> Optional[tuple[dict, dict]]:
    """(error, properties) of an rrweb console record at error level, else None."""
    level = record.get("level")
    if not isinstance(level, str) or level.lower() not in ERROR_LEVELS:
        return None
    message = console_message(record.get("payload")) or f"console.{level.lower()}"
    properties: dict[str, Any] = {"level": level.lower()}
    trace = record.get("trace")
    if isinstance(trace, list) and trace:
        properties["trace"] = [str(line) for line in trace[:_MAX_TRACE_LINES]]
    return {"message": message}, properties


def pagespy_console_error(data: dict) -> Optional[tuple[dict, dict]]:
    """PageSpy console entry `{logType, logs: [{type, value}], url, errorDetail}` at error level."""
    if data.get("logType") != "error":
        return None
    logs = data.get("logs") if isinstance(data.get("logs"), list) else []
    message = console_message([_pagespy_arg(a) for a in logs]) or "console.error"
    properties: dict[str, Any] = {"level": "error"}
    detail = data.get("errorDetail")
    if isinstance(detail, dict) and isinstance(detail.get("stack"), str):
        properties["trace"] = detail["stack"].splitlines()[:_MAX_TRACE_LINES]
    return {"message": message}, properties


def _pagespy_arg(arg: Any) -> Any:
    # PageSpy serializes each argument as {type, value} (atom) or a plain value.
    if isinstance(arg, dict) and "value" in arg:
        return arg["value"] if isinstance(arg["value"], str) else json.dumps(arg["value"], default=str)
    return arg


# -- network --------------------------------------------------------------------------------

def network_requests(payload: Any) -> list[dict]:
    """The request records of an `rrweb/network@1` payload (a list, {requests: [...]}, or one)."""
    if isinstance(payload, list):
        return [r for r in payload if isinstance(r, dict)]
    if not isinstance(payload, dict):
        return []
    if isinstance(payload.get("requests"), list):
        return [r for r in payload["requests"] if isinstance(r, dict)]
    if isinstance(payload.get("data"), dict):
        return [payload["data"]]
    if "url" in payload or "name" in payload:
        return [payload]
    return []


def _int(value: Any) -> Optional[int]:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return int(value)
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return None


def request_status(request: dict) -> Optional[int]:
    """The HTTP status the request itself reported. `responseStatus` (Resource Timing) is 0 for
    cross-origin responses, so there 0 means "unknown", never "failed"."""
    for key in ("status", "statusCode"):
        status = _int(request.get(key))
        if status is not None:
            return status
    status = _int(request.get("responseStatus"))
    return status if status else None


def request_failed(request: dict) -> bool:
    """Status >= 400, or a request that finished with status 0 (blocked, offline, CORS, aborted),
    or an explicit error flag. A resource entry or an unfinished request with status 0 is not."""
    status = request_status(request)
    if status is not None and status >= _HTTP_ERROR_MIN:
        return True
    if status == 0:
        ready = _int(request.get("readyState"))
        is_resource = request.get("responseType") == "resource"
        return not is_resource and (ready is None or ready == _XHR_DONE)
    return bool(request.get("error")) or request.get("failed") is True or request.get("aborted") is True


def network_error(request: dict) -> tuple[dict, Optional[dict]]:
    """(error, properties) of a failed request; fields the record lacks stay absent."""
    status = request_status(request)
    method = request.get("method")
    method = method.upper() if isinstance(method, str) and method.strip() else None
    url = request.get("url") or request.get("name")
    url = url if isinstance(url, str) and url else None
    reason = request.get("error") or request.get("statusText")
    verb = f"{method} " if method else ""
    if status:
        message = f"{verb}{url or '(unknown url)'} failed with status {status}"
    else:
        detail = f": {reason}" if isinstance(reason, str) and reason and reason != "Pending" else ""
        message = f"{verb}{url or '(unknown url)'} failed{detail}"
    error: dict[str, Any] = {"message": message, "status": status if status is not None else 0}
    if method:
        error["method"] = method
    if url:
        error["request_url"] = url
    properties = {key: request[key] for key in ("initiatorType", "requestType", "type", "duration", "costTime")
                  if key in request and isinstance(request[key], (str, int, float))
                  and not isinstance(request[key], bool)}
    return error, properties or None


def request_started_at(request: dict, fallback: int) -> int:
    """Epoch ms the request started: posthog-js writes `timestamp`, PageSpy `startTime`."""
    for key in ("timestamp", "startTime"):
        value = _int(request.get(key))
        if value is not None and value > 10 ** 12:  # epoch ms, not ms since page load
            return value
    return fallback
