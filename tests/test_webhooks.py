"""Webhook delivery against a real aiohttp receiver on loopback (allowed explicitly), and the
address guard: metadata, private, loopback (literal, IPv4-mapped, or by name) and redirects."""
from __future__ import annotations

import ipaddress

import pytest

from replaylens.config.settings import Settings
from replaylens.sinks.webhooks import (
    WebhookPolicy,
    WebhookRefused,
    WebhookSender,
    address_refusal,
    backoff_delay,
    check_url,
    parse_networks,
)
from tests.webhook_receiver import Receiver

LOOPBACK_ONLY = parse_networks(["127.0.0.1/32"])


class Sleeps:
    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)


@pytest.fixture
async def receiver():
    rec = await Receiver().start()
    yield rec
    await rec.stop()


def sender(allow=LOOPBACK_ONLY, sleeps: Sleeps | None = None, **kw) -> WebhookSender:
    options = dict(allow_networks=tuple(allow), timeout_s=5.0, max_attempts=3, backoff_s=0.2)
    options.update(kw)
    return WebhookSender(WebhookPolicy(**options), sleep=sleeps or Sleeps())


async def test_delivers_json_to_an_allowed_loopback_receiver(receiver):
    s = sender()
    result = await s.deliver(receiver.base_url + "/hook", {"status": "READY", "n": 1})
    await s.close()
    assert result.delivered and result.attempts == 1 and result.status == 200
    assert result.reason is None
    assert receiver.received == [{"status": "READY", "n": 1}]


async def test_retries_transient_failures_with_growing_jittered_backoff(receiver):
    receiver.statuses = [503, 500]
    sleeps = Sleeps()
    s = sender(sleeps=sleeps, max_attempts=4)
    result = await s.deliver(receiver.base_url + "/hook", {"x": 1})
    await s.close()
    assert result.delivered and result.attempts == 3
    assert receiver.hits["/hook"] == 3 and receiver.received == [{"x": 1}]
    assert len(sleeps.delays) == 2 and all(d >= 0 for d in sleeps.delays)


async def test_gives_up_after_max_attempts_with_the_reason(receiver):
    receiver.statuses = [500] * 10
    s = sender(max_attempts=3)
    result = await s.deliver(receiver.base_url + "/hook", {"x": 1})
    await s.close()
    assert not result.delivered and result.attempts == 3 and result.status == 500
    assert "HTTP 500" in result.reason and not result.refused
    assert receiver.received == []


async def test_a_client_error_is_not_retried(receiver):
    receiver.statuses = [404]
    s = sender(max_attempts=5)
    result = await s.deliver(receiver.base_url + "/hook", {"x": 1})
    await s.close()
    assert not result.delivered and result.attempts == 1 and result.status == 404


async def test_a_stalled_receiver_times_out_and_is_retried(receiver):
    receiver.stall_s = 2.0
    s = sender(timeout_s=0.3, max_attempts=2)
    result = await s.deliver(receiver.base_url + "/hook", {"x": 1})
    await s.close()
    assert not result.delivered and result.attempts == 2
    assert "timed out" in result.reason


async def test_follows_a_redirect_to_an_allowed_address(receiver):
    receiver.redirect_to = "/hook"
    s = sender()
    result = await s.deliver(receiver.base_url + "/moved", {"via": "redirect"})
    await s.close()
    assert result.delivered and receiver.received == [{"via": "redirect"}]
    assert receiver.hits == {"/moved": 1, "/hook": 1}


@pytest.mark.parametrize("private_target", ["http://10.0.0.1/hook", "http://169.254.169.254/latest/meta-data/",
                                            "http://[::1]:9/hook"])
async def test_a_redirect_to_a_private_address_is_refused(receiver, private_target):
    receiver.redirect_to = private_target
    s = sender(max_attempts=3)
    result = await s.deliver(receiver.base_url + "/moved", {"x": 1})
    await s.close()
    assert not result.delivered and result.refused and result.attempts == 1
    assert result.reason.startswith("refused")
    assert receiver.received == []


@pytest.mark.parametrize("url, why", [
    ("http://169.254.169.254/latest/meta-data/", "link-local"),
    ("http://10.0.0.1/hook", "private"),
    ("http://[::1]:8080/hook", "loopback"),
    ("http://[::ffff:127.0.0.1]/hook", "loopback"),
    ("http://127.0.0.1:9/hook", "loopback"),
    ("http://localhost:9/hook", "loopback"),
    ("http://0.0.0.0/hook", "unspecified"),
    ("http://100.100.100.200/latest/meta-data", "non-public"),
])
async def test_internal_addresses_are_refused_without_an_allow_list(url, why):
    s = sender(allow=())
    result = await s.deliver(url, {"x": 1})
    await s.close()
    assert not result.delivered and result.refused and result.attempts == 1
    assert why in result.reason
    with pytest.raises(WebhookRefused):
        await check_url(url)


async def test_the_allow_list_permits_only_what_it_names(receiver):
    with pytest.raises(WebhookRefused, match="link-local"):
        await check_url("http://169.254.169.254/", LOOPBACK_ONLY)
    with pytest.raises(WebhookRefused, match="private"):
        await check_url("http://10.0.0.1/", LOOPBACK_ONLY)
    with pytest.raises(WebhookRefused, match="loopback"):  # ::1 is not in 127.0.0.1/32
        await check_url("http://[::1]/", LOOPBACK_ONLY)
    assert await check_url(receiver.base_url + "/hook", LOOPBACK_ONLY) == ["127.0.0.1"]


async def test_a_name_resolving_to_loopback_is_refused_before_connecting(receiver):
    port = receiver.base_url.rsplit(":", 1)[1]
    s = sender(allow=())
    result = await s.deliver(f"http://localhost:{port}/hook", {"x": 1})
    await s.close()
    assert result.refused and "localhost resolves to a loopback" in result.reason
    assert receiver.hits == {}


@pytest.mark.parametrize("url", ["ftp://example.com/x", "file:///etc/passwd", "http:///nohost",
                                 "http://user:pw@example.com/", "gopher://127.0.0.1/"])
async def test_malformed_or_unsupported_urls_are_refused(url):
    with pytest.raises(WebhookRefused):
        await check_url(url, LOOPBACK_ONLY)


def test_public_addresses_pass_and_internal_ones_are_named():
    allow = ()
    assert address_refusal(ipaddress.ip_address("93.184.216.34"), allow) is None
    assert address_refusal(ipaddress.ip_address("2606:4700::1111"), allow) is None
    assert "private" in address_refusal(ipaddress.ip_address("192.168.1.1"), allow)
    assert "private" in address_refusal(ipaddress.ip_address("fd00:ec2::254"), allow)  # AWS IPv6 metadata
    assert "link-local" in address_refusal(ipaddress.ip_address("fe80::1"), allow)


def test_backoff_grows_exponentially_within_its_cap():
    policy = WebhookPolicy(backoff_s=1.0, max_backoff_s=4.0)
    for attempt, ceiling in [(1, 1.0), (2, 2.0), (3, 4.0), (6, 4.0)]:
        delays = [backoff_delay(attempt, policy) for _ in range(200)]
        assert all(0 <= d <= ceiling for d in delays)
        assert max(delays) > ceiling / 2  # jitter spreads over the whole range


def test_allow_networks_setting_takes_comma_separated_cidrs(monkeypatch):
    monkeypatch.setenv("REPLAYLENS_WEBHOOK_ALLOW_NETWORKS", "127.0.0.0/8, ::1/128")
    settings = Settings()
    assert settings.webhook_allow_networks == ["127.0.0.0/8", "::1/128"]
    policy = WebhookPolicy.from_settings(settings)
    assert ipaddress.ip_network("::1/128") in policy.allow_networks
    monkeypatch.setenv("REPLAYLENS_WEBHOOK_ALLOW_NETWORKS", "not-a-network")
    with pytest.raises(ValueError):
        Settings()
