"""Alert delivery and the embedded run: webhooks over real HTTP on 127.0.0.1 (Slack text and
plain JSON, retried with backoff, private addresses refused unless allowed), and `replaylens
run --spike` / `simulate --spike` as a user runs them."""
from __future__ import annotations

import json

import jsonschema
import orjson
from aiohttp import web

from replaylens.config.alert_rules import WebhookTarget
from replaylens.config.settings import Settings
from replaylens.sinks.webhooks import parse_networks
from replaylens.streams.alerting import AlertDelivery, webhook_sender
from replaylens.streams.simulator import SPIKE_ERROR, Spike, simulate
from tests.test_cli import cli

ALERT = {
    "type": "spike", "alert_id": "a1", "url": "https://shop.example.com/checkout", "signal": "rage-click",
    "at": 1_763_900_000_000, "window": {"start": 1_763_899_700_000, "end": 1_763_900_000_000, "ms": 300_000},
    "current": 42, "baseline": 4.0, "baseline_basis": "same-hour-of-day", "baseline_sample": 7, "ratio": 10.5,
    "sessions_affected": 9, "windows_over": 2, "windows_considered": 3,
    "sessions": [{"session_id": "u1:s1", "count": 6, "timestamp": 1_763_899_800_000,
                  "link": "https://replay.example.com/sessions/u1%3As1?t=1763899800000"}],
    "top_messages": [{"message": "TypeError: x is undefined", "count": 5}],
    "text": "Spike: rage-click on https://shop.example.com/checkout",
}


async def receiver(fail_first: int = 0):
    got: list[dict] = []
    calls = {"n": 0}

    async def hook(request: web.Request) -> web.Response:
        calls["n"] += 1
        if calls["n"] <= fail_first:
            return web.Response(status=503)
        got.append({"path": request.path, "body": await request.json()})
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/{name}", hook)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    return runner, f"http://127.0.0.1:{port}", got, calls


async def test_webhooks_get_slack_text_and_plain_json_with_retries():
    runner, base, got, calls = await receiver(fail_first=1)
    try:
        targets = [WebhookTarget(url=f"{base}/slack", format="slack"), WebhookTarget(url=f"{base}/json")]
        sender = webhook_sender(Settings(), allow_networks=parse_networks(["127.0.0.0/8"]), backoff_s=0.01)
        delivery = AlertDelivery(targets, sender)
        delivery.submit(ALERT)
        await delivery.close()
    finally:
        await runner.cleanup()
    assert all(r.delivered for r in delivery.results) and calls["n"] == 3   # one 503, retried
    by_path = {g["path"]: g["body"] for g in got}
    slack = by_path["/slack"]["text"]
    assert slack.startswith("Spike: rage-click on https://shop.example.com/checkout: 42 in the last 5 min vs 4 usual")
    assert "<https://replay.example.com/sessions/u1%3As1?t=1763899800000|u1:s1>" in slack
    assert by_path["/json"] == ALERT


async def test_webhooks_to_private_addresses_are_refused_by_default():
    runner, base, got, _calls = await receiver()
    try:
        delivery = AlertDelivery([WebhookTarget(url=f"{base}/json")], webhook_sender(Settings()))
        results = await delivery.deliver(ALERT)
        await delivery.close()
    finally:
        await runner.cleanup()
    assert got == [] and results[0].refused and "loopback" in results[0].reason


def test_simulate_spike_injects_rage_clicks_and_a_new_error_on_the_page():
    start = 1_735_689_600_000
    events = list(simulate(300, seed=3, start_ms=start, spike=Spike("/checkout", start, 30 * 60_000)))
    spiked = [e for e in events if e["event_id"].endswith("-spike-rage")]
    assert spiked and all(e["url"].endswith("/checkout") and e["type"] == "rage-click" for e in spiked)
    errors = [e for e in events if e["event_id"].endswith("-spike-error")]
    assert len(errors) == len(spiked) and errors[0]["error"]["message"] == SPIKE_ERROR
    plain = list(simulate(300, seed=3, start_ms=start))
    assert len(events) == len(plain) + 2 * len(spiked)   # additive: the rest of the run is unchanged
    out = cli("simulate", "--sessions", "40", "--spike", "/checkout", "--spike-start-ms", str(1_735_689_600_000)).stdout
    assert b"-spike-rage" in out.encode()


def test_run_spike_writes_alerts_ndjson_and_reports_them(tmp_path):
    out = cli("run", "--sessions", "2000", "--spike", "/checkout", "--data-dir", str(tmp_path), "--quiet",
              "--fresh", "--examples", "0").stdout
    alerts = [orjson.loads(line) for line in (tmp_path / "alerts.ndjson").read_bytes().splitlines()]
    schema = json.loads(cli("schema", "alert").stdout)
    for alert in alerts:
        jsonschema.validate(alert, schema)
    checkout = "https://shop.example.com/checkout"
    spikes = [a for a in alerts if a["type"] == "spike" and a["url"] == checkout]
    assert {a["signal"] for a in spikes} >= {"rage-click", "js-error"}
    assert len({(a["url"], a["signal"]) for a in spikes}) == len(spikes)   # one alert per spike
    rage = next(a for a in spikes if a["signal"] == "rage-click")
    assert rage["current"] >= 3 * rage["baseline"] and rage["sessions_affected"] >= 3
    assert rage["sessions"][0]["link"].startswith("http://localhost:8080/replay/sessions/")
    new = [a for a in alerts if a["type"] == "new-error"]
    assert [a["url"] for a in new] == [checkout] and new[0]["error_key"].endswith(SPIKE_ERROR)
    assert "alerts" in out and f"Spike: rage-click on {checkout}" in out and str(tmp_path / "alerts.ndjson") in out


def test_run_without_a_spike_stays_quiet(tmp_path):
    cli("run", "--sessions", "2000", "--data-dir", str(tmp_path), "--quiet", "--fresh", "--examples", "0")
    alerts = [orjson.loads(line) for line in (tmp_path / "alerts.ndjson").read_bytes().splitlines()]
    assert [a for a in alerts if a["type"] == "spike"] == []


def test_baselines_come_from_the_aggregates_same_hour_of_day(tmp_path):
    """The adapter reads the real DuckDB file: 12 rage clicks at 14:00 on each of 5 past days, and a
    busy 13:00 today, make a same-hour-of-day baseline of 12 per hour = 1 per 5-minute window."""
    from replaylens.aggregates.deltas import UrlDelta
    from replaylens.aggregates.store import AggregateStore
    from replaylens.config.alert_rules import AlertRules
    from replaylens.streams.alerting import AggregateBaselines

    hour, day = 3_600_000, 86_400_000
    today = 1_763_856_000_000 - 1_763_856_000_000 % day
    url = "https://shop.example.com/checkout"
    deltas = [UrlDelta(f"d{d}", today - d * day + 14 * hour, url, visits=10, rage_clicks=12) for d in range(1, 6)]
    deltas.append(UrlDelta("busy", today + 13 * hour, url, visits=10, rage_clicks=600))
    with AggregateStore(tmp_path / "a.duckdb", window_days=7) as store:
        store.apply(deltas)
        baselines = AggregateBaselines(store, AlertRules(), window_days=7)
        b = baselines(url, "rage-click", today + 14 * hour + 20 * 60_000)
        assert (b.basis, b.sample) == ("same-hour-of-day", 5) and abs(b.value - 1.0) < 1e-9
        quiet = baselines(url, "rage-click", today + 15 * hour)   # 15:00 was quiet every day
        assert (quiet.basis, quiet.value) == ("same-hour-of-day", 0.0)
        store.apply([UrlDelta("new", today + 12 * hour, f"{url}/new", visits=5, rage_clicks=24)])
        recent = baselines(f"{url}/new", "rage-click", today + 14 * hour)   # two hours of history
        assert (recent.basis, recent.sample) == ("recent-hours", 2) and abs(recent.value - 1.0) < 1e-9
        assert baselines(url, "api-error-5xx", today + 14 * hour) is None   # not in the aggregates
