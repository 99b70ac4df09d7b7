"""Outgoing webhook delivery, guarded against server-side request forgery.

Used by the HTTP API (highlights) and by alerts. A webhook URL is caller-supplied, so before
every connection — the first and each redirect, which we follow ourselves — its host is
resolved and every address must be public: private, loopback, link-local (cloud metadata
lives at 169.254.169.254), multicast, reserved and unspecified addresses are refused unless an
allow-list of networks (setting REPLAYLENS_WEBHOOK_ALLOW_NETWORKS) permits them. The addresses
checked are the addresses connected to: the HTTP client resolves through the same guard, so a
name that re-resolves to another address between check and connect (DNS rebinding) is refused
too. Deliveries have a timeout per attempt and retry transient failures with exponential
backoff and full jitter; the caller gets a DeliveryResult, never an exception.
"""
from __future__ import annotations

import asyncio
import ipaddress
import json
import random
import socket
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Iterable, Mapping, Optional, Union
from urllib.parse import urljoin, urlsplit

import aiohttp
from aiohttp.abc import AbstractResolver

IPAddress = Union[ipaddress.IPv4Address, ipaddress.IPv6Address]
IPNetwork = Union[ipaddress.IPv4Network, ipaddress.IPv6Network]

ALLOWED_SCHEMES = ("http", "https")
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
# Worth another attempt: the receiver may recover (timeouts, overload, restarts).
RETRYABLE_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})
DEFAULT_PORTS = {"http": 80, "https": 443}
USER_AGENT = "replaylens-webhook/1"
# A receiver's Retry-After is honoured up to this many backoff units, so one hostile or
# confused receiver cannot park a delivery for hours.
MAX_RETRY_AFTER_FACTOR = 8


class WebhookRefused(ValueError):
    """The URL may not be called: bad scheme, no host, or an address outside the allow-list."""


@dataclass(frozen=True)
class DeliveryResult:
    """What happened to one delivery: delivered, or failed with a reason, after N attempts."""

    url: str
    delivered: bool
    attempts: int
    status: Optional[int] = None
    reason: Optional[str] = None
    refused: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {"url": self.url, "delivered": self.delivered, "attempts": self.attempts,
                "status": self.status, "reason": self.reason, "refused": self.refused}


@dataclass(frozen=True)
class WebhookPolicy:
    """Limits of one delivery; from_settings reads the REPLAYLENS_WEBHOOK_* settings."""

    allow_networks: tuple[IPNetwork, ...] = ()
    timeout_s: float = 10.0
    max_attempts: int = 5
    backoff_s: float = 0.5
    max_backoff_s: float = 30.0
    max_redirects: int = 3

    @classmethod
    def from_settings(cls, settings: Any, **overrides: Any) -> "WebhookPolicy":
        values = dict(
            allow_networks=parse_networks(settings.webhook_allow_networks),
            timeout_s=settings.webhook_timeout_s, max_attempts=settings.webhook_max_attempts,
            backoff_s=settings.webhook_backoff_s, max_backoff_s=settings.webhook_max_backoff_s,
            max_redirects=settings.webhook_max_redirects)
        values.update(overrides)
        return cls(**values)


def parse_networks(cidrs: Iterable[str]) -> tuple[IPNetwork, ...]:
    """CIDRs (or single addresses) to networks; a malformed one raises ValueError."""
    return tuple(ipaddress.ip_network(c.strip(), strict=False) for c in cidrs if c.strip())


def _unmapped(address: IPAddress) -> IPAddress:
    """::ffff:10.0.0.1 is 10.0.0.1: judge IPv4-mapped addresses by their IPv4 form."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def address_refusal(address: IPAddress, allow: Iterable[IPNetwork]) -> Optional[str]:
    """Why this address may not be called, or None when it may."""
    address = _unmapped(address)
    if any(address.version == net.version and address in net for net in allow):
        return None
    for flag, label in (("is_loopback", "loopback"), ("is_unspecified", "unspecified"),
                        ("is_link_local", "link-local/metadata"),
                        ("is_private", "private"), ("is_multicast", "multicast"),
                        ("is_reserved", "reserved")):
        if getattr(address, flag):
            return f"{label} address {address}"
    if not address.is_global:  # e.g. carrier-grade NAT 100.64.0.0/10 (Alibaba's metadata)
        return f"non-public address {address}"
    return None


def split_target(url: str) -> tuple[str, int]:
    """(host, port) of an http(s) URL, or WebhookRefused."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise WebhookRefused(f"malformed URL: {exc}") from None
    if parts.scheme not in ALLOWED_SCHEMES:
        raise WebhookRefused(f"scheme must be http or https, not {parts.scheme or 'none'!r}")
    if not parts.hostname:
        raise WebhookRefused("URL has no host")
    if parts.username or parts.password:
        raise WebhookRefused("credentials in the URL are not accepted")
    return parts.hostname, port or DEFAULT_PORTS[parts.scheme]


class GuardedResolver(AbstractResolver):
    """Resolves a name and keeps only the addresses the policy allows (none: refused).

    aiohttp connects to what its resolver returns, so checking here closes the window between
    the check and the connection. Literal IP hosts never reach a resolver: check_url covers them.
    """

    def __init__(self, allow: Iterable[IPNetwork]) -> None:
        self.allow = tuple(allow)

    async def resolve(self, host: str, port: int = 0,
                      family: socket.AddressFamily = socket.AF_UNSPEC) -> list[dict[str, Any]]:
        loop = asyncio.get_running_loop()
        try:
            infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM, family=family)
        except socket.gaierror as exc:
            raise WebhookRefused(f"cannot resolve {host}: {exc.strerror}") from None
        allowed, refusals = [], []
        for fam, _, proto, _, sockaddr in infos:
            address = ipaddress.ip_address(sockaddr[0].split("%", 1)[0])
            refusal = address_refusal(address, self.allow)
            if refusal:
                refusals.append(refusal)
                continue
            allowed.append({"hostname": host, "host": str(address), "port": port, "family": fam,
                            "proto": proto, "flags": socket.AI_NUMERICHOST})
        if refusals:  # one bad address is enough: a name that can point inside is refused
            raise WebhookRefused(f"{host} resolves to a {refusals[0]}")
        if not allowed:
            raise WebhookRefused(f"{host} resolves to no address")
        return allowed

    async def close(self) -> None:
        return None


async def check_url(url: str, allow: Iterable[IPNetwork] = ()) -> list[str]:
    """The addresses url's host resolves to, all allowed; else WebhookRefused with the reason."""
    allow = tuple(allow)
    host, port = split_target(url)
    try:
        literal = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        literal = None
    if literal is not None:
        refusal = address_refusal(literal, allow)
        if refusal:
            raise WebhookRefused(f"refused: {refusal}")
        return [str(literal)]
    try:
        infos = await GuardedResolver(allow).resolve(host, port)
    except WebhookRefused as exc:
        raise WebhookRefused(f"refused: {exc}") from None
    return [info["host"] for info in infos]


def backoff_delay(attempt: int, policy: WebhookPolicy, retry_after: Optional[float] = None) -> float:
    """Full-jitter exponential backoff before attempt+1 (attempt counts from 1)."""
    ceiling = min(policy.max_backoff_s, policy.backoff_s * (2 ** (attempt - 1)))
    delay = random.uniform(0, ceiling)
    if retry_after is not None:
        delay = max(delay, min(retry_after, policy.backoff_s * MAX_RETRY_AFTER_FACTOR))
    return delay


def _retry_after(headers: Mapping[str, str]) -> Optional[float]:
    try:
        return max(0.0, float(headers.get("Retry-After", "")))
    except ValueError:
        return None


@dataclass
class _Attempt:
    status: Optional[int] = None
    reason: Optional[str] = None
    retryable: bool = False
    refused: bool = False
    retry_after: Optional[float] = None

    @property
    def delivered(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


class WebhookSender:
    """Posts JSON payloads to webhook URLs under a WebhookPolicy. One per process is enough."""

    def __init__(self, policy: WebhookPolicy,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
        self.policy = policy
        self._sleep = sleep  # injectable: tests record the backoff instead of waiting it out
        self._session: Optional[aiohttp.ClientSession] = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(resolver=GuardedResolver(self.policy.allow_networks),
                                             use_dns_cache=False)
            # trust_env=False: an HTTP(S)_PROXY from the environment would bypass the guard.
            self._session = aiohttp.ClientSession(
                connector=connector, trust_env=False,
                timeout=aiohttp.ClientTimeout(total=self.policy.timeout_s),
                headers={"User-Agent": USER_AGENT})
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def check(self, url: str) -> list[str]:
        """Validate a URL now (e.g. when a request registers it); WebhookRefused if not allowed."""
        return await check_url(url, self.policy.allow_networks)

    async def deliver(self, url: str, payload: Any,
                      headers: Optional[Mapping[str, str]] = None) -> DeliveryResult:
        """POST payload as JSON; retry transient failures; never raises."""
        body = json.dumps(payload, ensure_ascii=False).encode()
        attempts = 0
        last = _Attempt(reason="no attempt made")
        while attempts < self.policy.max_attempts:
            attempts += 1
            last = await self._attempt(url, body, headers or {})
            if last.delivered:
                return DeliveryResult(url, True, attempts, status=last.status)
            if not last.retryable or attempts >= self.policy.max_attempts:
                break
            await self._sleep(backoff_delay(attempts, self.policy, last.retry_after))
        return DeliveryResult(url, False, attempts, status=last.status, reason=last.reason,
                              refused=last.refused)

    async def _attempt(self, url: str, body: bytes, headers: Mapping[str, str]) -> _Attempt:
        """One delivery attempt, following up to max_redirects redirects, each one re-checked."""
        target = url
        try:
            for _ in range(self.policy.max_redirects + 1):
                await self.check(target)
                async with self._client().post(
                        target, data=body, allow_redirects=False,
                        headers={"Content-Type": "application/json", **headers}) as response:
                    await response.read()
                    if response.status in REDIRECT_STATUSES and "Location" in response.headers:
                        target = urljoin(target, response.headers["Location"])
                        continue
                    return self._judge(response.status, response.headers)
            return _Attempt(reason=f"more than {self.policy.max_redirects} redirects")
        except WebhookRefused as exc:
            return _Attempt(reason=str(exc) if str(exc).startswith("refused") else f"refused: {exc}",
                            refused=True)
        except asyncio.TimeoutError:
            return _Attempt(reason=f"timed out after {self.policy.timeout_s} s", retryable=True)
        except aiohttp.ClientError as exc:
            cause = exc.__cause__ or exc.__context__
            if isinstance(cause, WebhookRefused) or isinstance(exc.__context__, WebhookRefused):
                return _Attempt(reason=f"refused: {cause}", refused=True)
            return _Attempt(reason=f"connection failed: {exc.__class__.__name__}: {exc}", retryable=True)

    @staticmethod
    def _judge(status: int, headers: Mapping[str, str]) -> _Attempt:
        if 200 <= status < 300:
            return _Attempt(status=status)
        retryable = status in RETRYABLE_STATUSES
        return _Attempt(status=status, reason=f"receiver answered HTTP {status}", retryable=retryable,
                        retry_after=_retry_after(headers) if retryable else None)
