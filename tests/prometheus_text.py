"""A strict reader of Prometheus' text exposition format 0.0.4, for tests (no client library)."""
from __future__ import annotations

import math
import re

SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (-?[0-9.eE+-]+|\+Inf|-Inf|NaN)$')
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"(,|$)')
KINDS = {"counter", "gauge", "histogram", "summary", "untyped"}


def parse(text: str) -> dict[str, dict]:
    """{family: {"type", "help", "samples": {(name, ((label, value), ...)): float}}}; raises on
    anything malformed: samples before their TYPE, unknown types, bad labels, duplicates."""
    families: dict[str, dict] = {}
    current = None
    assert text.endswith("\n"), "exposition must end with a newline"
    for line in text.splitlines():
        if line.startswith("# HELP "):
            name, _, help_text = line[7:].partition(" ")
            families.setdefault(name, {"samples": {}})["help"] = help_text
        elif line.startswith("# TYPE "):
            name, _, kind = line[7:].partition(" ")
            assert kind in KINDS, line
            fam = families.setdefault(name, {"samples": {}})
            assert "type" not in fam, f"TYPE twice for {name}"
            fam["type"], current = kind, name
        elif line.startswith("#") or not line:
            continue
        else:
            m = SAMPLE.match(line)
            assert m, f"malformed sample: {line!r}"
            name, labels_text, value = m.group(1), m.group(3) or "", m.group(4)
            assert current and name.startswith(current), f"sample {name} outside its family ({current})"
            labels = tuple(LABEL.findall(labels_text))
            assert ",".join(f'{k}="{v}"' for k, v, _ in labels) == labels_text, f"bad labels: {line!r}"
            key = (name, tuple((k, v) for k, v, _ in labels))
            assert key not in families[current]["samples"], f"duplicate sample {line!r}"
            families[current]["samples"][key] = math.inf if value == "+Inf" else float(value)
    return families


def value(families: dict, family: str, name: str = "", **labels: str) -> float:
    key = (name or family, tuple(sorted(labels.items())))
    for (n, ls), v in families[family]["samples"].items():
        if (n, tuple(sorted(ls))) == key:
            return v
    raise KeyError(f"{key} not in {family}")
