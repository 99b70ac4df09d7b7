"""Time-coded replay links and markdown links (pure)."""
from __future__ import annotations

from string import Formatter
from typing import Callable, Optional
from urllib.parse import quote

from replaylens.config.settings import setting_default

LINK_PLACEHOLDERS = frozenset({"replay_base_url", "session_id", "timestamp_ms"})


def _placeholders(template: str) -> set[str]:
    try:
        return {field for _, field, _, _ in Formatter().parse(template) if field is not None}
    except ValueError as exc:
        raise ValueError(f"link template {template!r} is malformed: {exc}") from None


def check_link_template(template: str) -> None:
    """Raise ValueError when the template names a placeholder we cannot fill."""
    unknown = _placeholders(template) - LINK_PLACEHOLDERS
    if unknown:
        raise ValueError(
            f"link template {template!r} has unknown placeholder(s) "
            f"{', '.join('{' + name + '}' for name in sorted(unknown))}; "
            f"allowed: {', '.join('{' + name + '}' for name in sorted(LINK_PLACEHOLDERS))}"
        )


def replay_link(template: str, replay_base_url: str, session_id: str, timestamp_ms: int) -> str:
    """The replay URL that opens `session_id` at `timestamp_ms`.

    The session id is percent-encoded ("user:sess" -> "user%3Asess") so ids with
    colons or slashes stay one path segment. A trailing slash on the base URL is
    dropped so "{replay_base_url}/sessions" never yields "//sessions".
    """
    check_link_template(template)
    return template.format(
        replay_base_url=replay_base_url.rstrip("/"),
        session_id=quote(str(session_id), safe=""),
        timestamp_ms=int(timestamp_ms),
    )


def escape_md_text(text: str) -> str:
    """Escape characters that would end or nest a markdown link text."""
    return text.replace("\\", "\\\\").replace("[", "\\[").replace("]", "\\]")


def md_link(text: str, url: str) -> str:
    """`[text](url)` with brackets in the text escaped and the URL kept unbreakable."""
    safe_url = url.replace(" ", "%20").replace("(", "%28").replace(")", "%29")
    return f"[{escape_md_text(text)}]({safe_url})"


DEFAULT_LINK_TEMPLATE: str = setting_default("link_template")
DEFAULT_REPLAY_BASE_URL: str = setting_default("replay_base_url")


class LinkSettings:
    """A checked link template and base URL; `for_session` binds a session id."""

    __slots__ = ("template", "replay_base_url", "_plain_timestamps")

    def __init__(self, template: Optional[str] = None, replay_base_url: Optional[str] = None) -> None:
        self.template = template if template is not None else DEFAULT_LINK_TEMPLATE
        self.replay_base_url = replay_base_url if replay_base_url is not None else DEFAULT_REPLAY_BASE_URL
        check_link_template(self.template)
        # How many plain {timestamp_ms} fields the template has, None when one is formatted:
        # parsed once here, not for every session.
        self._plain_timestamps = _plain_timestamp_fields(self.template)

    def link(self, session_id: str, timestamp_ms: int) -> str:
        return replay_link(self.template, self.replay_base_url, session_id, timestamp_ms)

    def for_session(self, session_id: str) -> Callable[[int], str]:
        """A link maker for one session: the template is checked once, the id encoded once, and
        everything but the timestamp filled in once (a summary makes a link per moment it cites)."""
        prefix_args = dict(replay_base_url=self.replay_base_url.rstrip("/"),
                           session_id=quote(str(session_id), safe=""))
        template = self.template
        parts = _around_timestamps(template, prefix_args, self._plain_timestamps)
        if parts is None:
            return lambda timestamp_ms: template.format(timestamp_ms=int(timestamp_ms), **prefix_args)
        return lambda timestamp_ms: str(int(timestamp_ms)).join(parts)


_MARK = "\x00"  # stands for the timestamp while the rest is filled in; no URL holds it


def _plain_timestamp_fields(template: str) -> Optional[int]:
    """How many `{timestamp_ms}` fields the template has; None when one formats the timestamp
    (`{timestamp_ms:08d}`)."""
    fields = [(spec, conversion) for _, name, spec, conversion in Formatter().parse(template)
              if name == "timestamp_ms"]
    if any(spec or conversion for spec, conversion in fields):
        return None
    return len(fields)


def _around_timestamps(template: str, args: dict[str, str], plain_fields: Optional[int]) -> Optional[list[str]]:
    """The template filled in except for its plain `{timestamp_ms}` fields (`plain_fields` of
    them, see `_plain_timestamp_fields`), split where they go; None when a field formats the
    timestamp or the mark shows up elsewhere."""
    if plain_fields is None:
        return None
    parts = template.format(timestamp_ms=_MARK, **args).split(_MARK)
    return parts if len(parts) == plain_fields + 1 else None
