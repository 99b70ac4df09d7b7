"""How an alert reads: one markdown text (the alert's `text`), a Slack payload, a JSON payload."""
from __future__ import annotations

from typing import Any

MS_PER_MINUTE = 60_000
SLACK_MAX_CHARS = 3_000  # Slack truncates longer section texts


def _minutes(ms: int) -> str:
    return f"{ms / MS_PER_MINUTE:g} min" if ms >= MS_PER_MINUTE else f"{ms / 1000:g} s"


def _figures(alert: dict[str, Any]) -> str:
    window = _minutes(alert["window"]["ms"])
    text = f"{alert['current']} in the last {window}"
    if alert.get("baseline") is not None:
        basis = (alert.get("baseline_basis") or "").replace("-", " ")
        text += f" vs {alert['baseline']:g} usual ({basis}, {alert.get('baseline_sample', 0)})"
        if alert.get("ratio"):
            text += f", {alert['ratio']:g}x"
    return text + f"; {alert['sessions_affected']} sessions affected"


def _headline(alert: dict[str, Any]) -> str:
    kind = alert["type"]
    if kind == "spike":
        where = f" (mostly {alert['pages'][0]['url']})" if alert.get("pages") else ""
        return f"Spike: {alert['signal']} on {alert['url']}{where}: {_figures(alert)}"
    if kind == "all-clear":
        return f"All clear: {alert['signal']} on {alert['url']} is back to normal: {_figures(alert)} (peak {alert.get('peak')})"
    if kind == "new-error":
        return (f"New error on {alert['url']}: {alert['error_key']} in {alert['sessions_affected']} sessions "
                f"in the last {_minutes(alert['window']['ms'])}")
    return f"Digest: {alert['count']} alerts held during quiet hours"


def alert_text(alert: dict[str, Any], link=lambda text, url: f"[{text}]({url})") -> str:
    """Markdown: the headline, the sessions (worst first) as time-coded links, the top messages."""
    if alert["type"] == "digest":
        return "\n".join([_headline(alert)] + [f"- {_headline(a)}" for a in alert["alerts"]])
    lines = [_headline(alert)]
    for s in alert.get("sessions") or ():
        lines.append(f"- {link(s['session_id'], s['link'])} ({s['count']})")
    for m in alert.get("top_messages") or ():
        lines.append(f"- \"{m['message']}\" x{m['count']}")
    return "\n".join(lines)


def _slack_link(text: str, url: str) -> str:
    return f"<{url}|{text.replace('|', '/').replace('<', '').replace('>', '')}>"


def slack_payload(alert: dict[str, Any]) -> dict[str, Any]:
    """Slack incoming-webhook shape: {"text": ...} with Slack's <url|text> links."""
    if alert["type"] == "digest":
        text = "\n".join([_headline(alert)] + [alert_text(a, _slack_link) for a in alert["alerts"]])
    else:
        text = alert_text(alert, _slack_link)
    return {"text": text[:SLACK_MAX_CHARS]}


def json_payload(alert: dict[str, Any]) -> dict[str, Any]:
    return dict(alert)


def payload_for(alert: dict[str, Any], fmt: str) -> dict[str, Any]:
    return slack_payload(alert) if fmt == "slack" else json_payload(alert)
