"""URL normalization: many concrete URLs become one page for the aggregates.

`https://Shop.example:443/product/123/?utm_source=x#reviews` and
`https://shop.example/product/987` are both `https://shop.example/product/:id`.

Rules, in order:
- scheme and host lower-cased, user info and default ports (80/443) dropped;
- fragment dropped; query dropped except the configured `keep_query_params`, sorted;
- empty segments (`//`) and the trailing slash dropped (the root stays `/`);
- a path segment becomes `:id` when it is a number, a UUID, a long hex token (>= 12 chars
  with a digit: hashes, object ids), a long base62-ish token (>= 16 letters/digits with at
  least 2 digits and a letter), or fully matches one of the configured `id_patterns`.

Pure and cached: the same URLs repeat on every event, so results are memoized per instance.
"""
from __future__ import annotations

import re
from functools import lru_cache
from typing import Iterable
from urllib.parse import parse_qsl, urlencode, urlsplit

ID_PLACEHOLDER = ":id"
_DEFAULT_PORTS = {"http": 80, "https": 443}
_NUMBER = re.compile(r"\d+")
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_HEX_TOKEN = re.compile(r"(?=[0-9a-fA-F]*\d)[0-9a-fA-F]{12,}")
_BASE62_TOKEN = re.compile(r"(?=(?:[A-Za-z]*\d){2})(?=[0-9]*[A-Za-z])[A-Za-z0-9]{16,}")
_DEFAULT_ID_RULES = (_NUMBER, _UUID, _HEX_TOKEN, _BASE62_TOKEN)


class UrlNormalizer:
    """Turns concrete URLs into page keys. `normalize` is memoized (bounded cache)."""

    def __init__(
        self,
        keep_query_params: Iterable[str] = (),
        id_patterns: Iterable[str] = (),
        cache_size: int = 65_536,
    ) -> None:
        self.keep_query_params = frozenset(keep_query_params)
        compiled = []
        for pattern in id_patterns:
            try:
                compiled.append(re.compile(pattern))
            except re.error as exc:
                raise ValueError(f"url id pattern {pattern!r} is not a valid regex: {exc}") from None
        # One alternation: a single fullmatch per path segment instead of one per rule.
        rules = _DEFAULT_ID_RULES + tuple(compiled)
        self._id_rule = re.compile("|".join(f"(?:{rule.pattern})" for rule in rules))
        self.normalize = lru_cache(maxsize=cache_size)(self._normalize)

    @classmethod
    def from_settings(cls, settings) -> "UrlNormalizer":
        return cls(settings.url_keep_query_params, settings.url_id_patterns)

    def is_id(self, segment: str) -> bool:
        return self._id_rule.fullmatch(segment) is not None

    def normalize_path(self, path: str) -> str:
        segments = [ID_PLACEHOLDER if self.is_id(s) else s for s in path.split("/") if s]
        return "/" + "/".join(segments)

    def _normalize(self, url: str) -> str:
        try:
            parts = urlsplit(url.strip())
            port = parts.port
        except ValueError:  # e.g. an unclosed IPv6 bracket or a bad port: keep it, minus extras
            return url.split("#", 1)[0].split("?", 1)[0].strip()
        prefix = ""
        if parts.netloc:
            scheme = parts.scheme.lower()
            host = (parts.hostname or "").lower()
            if ":" in host:
                host = f"[{host}]"
            if port is not None and port != _DEFAULT_PORTS.get(scheme):
                host = f"{host}:{port}"
            prefix = f"{scheme}://{host}" if scheme else f"//{host}"
        normalized = prefix + self.normalize_path(parts.path)
        if self.keep_query_params and parts.query:
            kept = sorted(
                (k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k in self.keep_query_params
            )
            if kept:
                normalized += "?" + urlencode(kept)
        return normalized


def display_path(normalized_url: str) -> str:
    """The path (and kept query) of a normalized URL, for human-readable texts."""
    if "://" in normalized_url:
        rest = normalized_url.split("://", 1)[1]
        slash = rest.find("/")
        return rest[slash:] if slash >= 0 else "/"
    return normalized_url
