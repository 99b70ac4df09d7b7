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


def test_baselines_read_for_all_urls_at_once_equal_a_query_per_url(tmp_path):
    """AggregateBaselines reads every URL's hourly rows in one query, again only after the store
    was written: each URL gets the figures a query of its own would have read at that moment."""
    from replaylens.aggregates.deltas import UrlDelta
    from replaylens.aggregates.store import AggregateStore
    from replaylens.config.alert_rules import AlertRules
    from replaylens.streams.alerting import AggregateBaselines

    class PerUrl:  # the store without its write count: one query per URL, as before
        def __init__(self, store):
            self.store = store

        def query(self, sql, params):
            return self.store.query(sql, params)

    hour = 3_600_000
    now = 1_763_856_000_000 + 10 * hour + 5 * 60_000
    urls = [f"https://shop.example.com/p{i}" for i in range(4)]
    with AggregateStore(tmp_path / "a.duckdb", window_days=7) as store:
        store.apply([UrlDelta(f"a{i}{h}", now - now % hour - h * hour, u, visits=3, rage_clicks=i + h, js_errors=h)
                     for i, u in enumerate(urls[:2]) for h in range(1, 4)])
        batched, single = (AggregateBaselines(s, AlertRules(), 7) for s in (store, PerUrl(store)))
        for signal in ("rage-click", "js-error"):
            assert batched(urls[0], signal, now) == single(urls[0], signal, now)
        writes = store.writes
        store.apply([UrlDelta(f"b{h}", now - now % hour - h * hour, u, visits=1, rage_clicks=50)
                     for u in urls for h in range(1, 3)])
        assert store.writes == writes + 1
        for u in urls:  # urls[0] keeps what it read this hour; the others read after the write
            assert batched(u, "rage-click", now) == single(u, "rage-click", now)
        assert batched(urls[1], "rage-click", now).value > batched(urls[0], "rage-click", now).value


def test_embedded_alerts_fed_from_the_stage_equal_alerts_from_raw_messages(tmp_path):
    """The embedded run feeds the alert engine the stage's accepted events (a rejected message as
    it was sent): the same alerts and the same engine state as reading every raw message, on a
    simulated spike with invalid, duplicate, id-less and ISO-timestamped messages mixed in."""
    from datetime import datetime, timezone

    from replaylens.streams.alerting import EmbeddedAlerts
    from replaylens.streams.stage import Origin, SessionStage

    messages = []
    for i, event in enumerate(simulate(2000, seed=3, spike=Spike("/checkout"))):
        raw = orjson.dumps(event)
        messages.append(raw)
        if i % 97 == 0:
            iso = datetime.fromtimestamp(event["timestamp"] / 1000, timezone.utc).isoformat()
            messages += [b"{not json", raw,
                         orjson.dumps({k: v for k, v in event.items() if k != "event_id"} | {"type": "rage-click"}),
                         orjson.dumps(event | {"event_id": f"{i}-iso", "type": "console-error", "timestamp": iso,
                                               "error": {"message": f"boom {i}"}}),
                         orjson.dumps(event | {"type": "dead-click", "session_id": 5})]
    outputs = []
    for via_stage, d in ((True, tmp_path / "stage"), (False, tmp_path / "raw")):
        settings = Settings(data_dir=d)
        stage, alerts, origin = SessionStage.from_settings(settings), EmbeddedAlerts(settings), Origin("embedded", 0)
        for raw in messages:
            accepted = stage.process(0, raw, origin, 1_900_000_000_000)
            if via_stage:
                alerts.feed(accepted, raw)
            else:
                alerts.feed_raw(raw)
        alerts.close()
        outputs.append((alerts.alerts, {url: alerts.engine.export_state(url) for url in sorted(alerts.engine.states)}))
    assert outputs[0] == outputs[1]
    assert {a["type"] for a in outputs[0][0]} >= {"spike", "new-error"}
