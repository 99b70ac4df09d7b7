"""API keys (constant-time comparison, scopes) and a token-bucket rate limit per key."""
from __future__ import annotations

import hashlib
import hmac
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Optional

SCOPES = frozenset({"read", "write"})
AUTH_SCHEMES = ("bearer", "token")  # Bearer <key>; LogRocket's `token <key>`
SECONDS_PER_MINUTE = 60.0


class KeyFileError(ValueError):
    """The keys file cannot be read or has a bad line."""


@dataclass(frozen=True)
class ApiKey:
    secret: bytes
    scopes: frozenset[str]
    key_id: str  # a short hash: names the key in logs and rate limits, never the key itself


def make_key(secret: str, scopes: Iterable[str] = SCOPES) -> ApiKey:
    digest = hashlib.sha256(secret.encode()).hexdigest()[:12]
    return ApiKey(secret.encode(), frozenset(scopes), f"k_{digest}")


def parse_keys_file(path: Path) -> list[ApiKey]:
    """Lines `<key> [scope,scope]`; blank lines and # comments skipped; no scopes = all."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise KeyFileError(f"API keys file {path}: {exc}") from None
    keys = []
    for number, line in enumerate(lines, 1):
        parts = line.split("#", 1)[0].split()
        if not parts:
            continue
        if len(parts) > 2:
            raise KeyFileError(f"API keys file {path}:{number}: expected `<key> [scope,scope]`")
        scopes = set(parts[1].split(",")) if len(parts) == 2 else set(SCOPES)
        unknown = scopes - SCOPES
        if unknown:
            raise KeyFileError(f"API keys file {path}:{number}: unknown scope(s) {sorted(unknown)}; "
                               f"known: {sorted(SCOPES)}")
        keys.append(make_key(parts[0], scopes))
    return keys


def load_keys(env_keys: str, keys_file: Optional[Path]) -> list[ApiKey]:
    keys = [make_key(k.strip()) for k in env_keys.split(",") if k.strip()]
    if keys_file is not None:
        keys += parse_keys_file(keys_file)
    return keys


def presented_key(header: Optional[str]) -> Optional[str]:
    """The key in an Authorization header (`Bearer <key>` or `token <key>`), or None."""
    if not header:
        return None
    scheme, _, value = header.strip().partition(" ")
    if scheme.lower() not in AUTH_SCHEMES or not value.strip():
        return None
    return value.strip()


class KeyRing:
    def __init__(self, keys: Iterable[ApiKey]) -> None:
        self.keys = list(keys)

    def find(self, presented: str) -> Optional[ApiKey]:
        """The matching key; every key is compared (no early exit), in constant time each."""
        candidate = presented.encode()
        found = None
        for key in self.keys:
            if hmac.compare_digest(candidate, key.secret):
                found = key
        return found


@dataclass
class _Bucket:
    tokens: float
    updated: float


@dataclass
class RateLimiter:
    """Token bucket per key: `per_minute` requests a minute, bursts up to the same number."""

    per_minute: int
    clock: Callable[[], float] = time.monotonic
    _buckets: dict[str, _Bucket] = field(default_factory=dict)

    def acquire(self, key_id: str) -> Optional[float]:
        """None when the request may go; else the seconds until it could."""
        if self.per_minute <= 0:
            return None
        now = self.clock()
        rate = self.per_minute / SECONDS_PER_MINUTE
        bucket = self._buckets.setdefault(key_id, _Bucket(float(self.per_minute), now))
        bucket.tokens = min(float(self.per_minute), bucket.tokens + (now - bucket.updated) * rate)
        bucket.updated = now
        if bucket.tokens >= 1:
            bucket.tokens -= 1
            return None
        return (1 - bucket.tokens) / rate
