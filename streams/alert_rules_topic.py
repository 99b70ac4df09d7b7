"""Alert rules set through the API, shared with every worker by a compacted topic.

`REPLAYLENS_TOPIC_ALERT_RULES` holds one record, key `rules`: the whole effective rule set and
when it was set (`{"rules": {...}, "updated_at": <epoch ms>}`), or a tombstone when the API's
rules were deleted (the settings' rules apply again). The API writes it; every worker follows it
(`CompactedView`) and applies a change at its next evaluation, without a restart. The window
layout (`window_ms`, `step_ms`) is the one thing a running worker keeps: the API refuses to
change it (config/alert_rules.py `live_change_refused`).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Optional

import orjson
from pydantic import ValidationError

from replaylens.config.alert_rules import AlertRules

log = logging.getLogger("replaylens.alerts")

RULES_KEY = "rules"
SOURCE_API, SOURCE_SETTINGS = "api", "settings"


@dataclass(frozen=True)
class RulesRecord:
    rules: AlertRules
    updated_at: int


def encode_rules_record(record: RulesRecord) -> bytes:
    return orjson.dumps({"rules": record.rules.model_dump(mode="json"), "updated_at": record.updated_at})


def decode_rules_record(value: bytes) -> Optional[RulesRecord]:
    """A record of the topic, or None (logged) when it is not one: a bad record never stops a reader."""
    try:
        data = orjson.loads(value)
        return RulesRecord(AlertRules.model_validate(data["rules"]), int(data["updated_at"]))
    except (orjson.JSONDecodeError, ValidationError, KeyError, TypeError, ValueError) as exc:
        log.warning("ignoring an invalid alert-rules record (%s)", type(exc).__name__)
        return None


@dataclass(frozen=True)
class EffectiveRules:
    rules: AlertRules
    source: str  # SOURCE_API or SOURCE_SETTINGS
    updated_at: Optional[int] = None

    def describe(self) -> dict[str, Any]:
        """What `GET /v1/alerts/rules` and each worker's alerts-status.json show."""
        return {"rules": self.rules.model_dump(mode="json"), "source": self.source, "updated_at": self.updated_at}


def effective_rules(settings_rules: AlertRules, values: dict[str, Any]) -> EffectiveRules:
    """The API's rules when the topic holds some, else the settings' ones."""
    record = values.get(RULES_KEY)
    if record is None:
        return EffectiveRules(settings_rules, SOURCE_SETTINGS)
    return EffectiveRules(record.rules, SOURCE_API, record.updated_at)
