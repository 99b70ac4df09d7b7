"""Fill a profile's JSON Schema from deterministic facts (pure).

Used by the built-in summarizer when a profile has `llm.output_schema`: each property is
matched by its name (then its description) to a fact we know (summary, issues, goal,
final action, outcome, pages, ...), coerced to the property's type, and anything required
that we cannot fill gets a type-correct empty value. The answer is validated before use.
"""
from __future__ import annotations

import json
import re
from datetime import datetime, timezone
from typing import Any

import jsonschema

Facts = dict[str, Any]
Rules = tuple[tuple[tuple[str, ...], str], ...]

# Order matters: the first rule whose keyword matches a name token wins.
TOP_RULES: Rules = (
    (("help", "support", "faq"), "help_pages"),
    (("termination", "terminate", "reason", "why", "churn", "dropoff"), "reason"),
    (("final", "last", "exit"), "final_action"),
    (("goal", "intent", "purpose", "objective", "aim"), "goal"),
    (("sentiment", "mood", "frustrat", "satisfaction"), "sentiment"),
    (("issue", "problem", "error", "friction", "struggle", "pain", "bug"), "issues"),
    (("converted", "conversion", "purchased", "success", "successful"), "converted"),
    (("outcome", "status", "result", "resolution"), "outcome"),
    (("insight", "highlight", "takeaway", "observation", "finding"), "insights"),
    (("journey", "steps", "path", "flow", "timeline"), "journey"),
    (("page", "url", "visited", "screens"), "pages"),
    (("user", "customer", "visitor", "uid"), "user_id"),
    (("location", "country", "city", "geo", "region"), "location"),
    (("device", "browser", "platform", "os"), "device"),
    (("duration", "length", "elapsed"), "duration_ms"),
    (("session", "recording"), "session_id"),
    (("summary", "overview", "description", "narrative", "recap", "text", "tldr", "abstract"), "summary"),
)
ITEM_RULES: Rules = (
    (("description", "text", "summary", "detail", "message", "issue", "title", "name", "what"), "description"),
    (("type", "kind", "category"), "type"),
    (("link", "replay", "href"), "link"),
    (("url", "page", "location", "path", "where"), "url"),
    (("timestamp", "time", "when", "at", "entered"), "timestamp"),
    (("event", "id"), "event_id"),
    (("action", "activity", "activities", "did"), "actions"),
    (("duration", "spent", "dwell"), "time_on_page_ms"),
    (("severity", "priority", "impact", "level"), "severity"),
)

_MISSING = object()


def _tokens(text: str) -> list[str]:
    text = re.sub(r"([a-z0-9])([A-Z])", r"\1 \2", text or "")
    return [t for t in re.split(r"[^a-z0-9]+", text.lower()) if t]


def _keyword_hits(keyword: str, tokens: list[str]) -> bool:
    # Short keywords ("os", "id", "at") must match a whole token, longer ones a prefix.
    if len(keyword) <= 3:
        return keyword in tokens
    return any(t.startswith(keyword) for t in tokens)


def lookup(name: str, description: str, facts: Facts, rules: Rules) -> Any:
    """The fact a property named `name` asks for, or _MISSING."""
    direct = "_".join(_tokens(name))
    if direct in facts:
        return facts[direct]
    for text in (name, description):
        tokens = _tokens(text)
        if not tokens:
            continue
        for keywords, key in rules:
            if key in facts and any(_keyword_hits(k, tokens) for k in keywords):
                return facts[key]
    return _MISSING


class SchemaFiller:
    def __init__(self, root: dict[str, Any]) -> None:
        self.root = root

    # ---------------------------------------------------------------- schema helpers
    def resolve(self, schema: Any) -> dict[str, Any]:
        if not isinstance(schema, dict):
            return {} if schema is True else {"not": {}}
        seen = 0
        while "$ref" in schema and seen < 20:
            ref = schema["$ref"]
            if not ref.startswith("#"):
                raise ValueError(f"output_schema: only local $ref is supported, got {ref!r}")
            node: Any = self.root
            for part in [p for p in ref[1:].split("/") if p]:
                node = node[part.replace("~1", "/").replace("~0", "~")]
            extra = {k: v for k, v in schema.items() if k != "$ref"}
            schema = {**node, **extra}
            seen += 1
        if "allOf" in schema:
            merged = {k: v for k, v in schema.items() if k != "allOf"}
            for part in schema["allOf"]:
                part = self.resolve(part)
                merged.setdefault("properties", {}).update(part.get("properties", {}))
                merged["required"] = sorted(set(merged.get("required", [])) | set(part.get("required", [])))
                for key, value in part.items():
                    if key not in ("properties", "required"):
                        merged.setdefault(key, value)
            schema = merged
        return schema

    @staticmethod
    def types(schema: dict[str, Any]) -> list[str]:
        declared = schema.get("type")
        if isinstance(declared, str):
            return [declared]
        if isinstance(declared, list) and declared:
            return list(declared)
        if "properties" in schema:
            return ["object"]
        if "items" in schema:
            return ["array"]
        if "enum" in schema and schema["enum"]:
            return [_json_type(schema["enum"][0])]
        return ["string"]

    def valid(self, schema: dict[str, Any], value: Any) -> bool:
        sub = {**schema}
        for key in ("$defs", "definitions"):
            if key in self.root and key not in sub:
                sub[key] = self.root[key]
        return jsonschema.validators.validator_for(self.root)(sub).is_valid(value)

    # ---------------------------------------------------------------- defaults
    def default(self, schema: Any, facts: Facts, rules: Rules) -> Any:
        schema = self.resolve(schema)
        if "const" in schema:
            return schema["const"]
        if "default" in schema:
            return schema["default"]
        if schema.get("enum"):
            return schema["enum"][0]
        for option_key in ("anyOf", "oneOf"):
            if schema.get(option_key):
                return self.default(schema[option_key][0], facts, rules)
        kind = next((t for t in self.types(schema) if t != "null"), "null")
        if kind == "string":
            return "" if not schema.get("minLength") else "unknown".ljust(schema["minLength"], "-")
        if kind == "array":
            return [self.default(schema.get("items", {}), facts, rules)
                    for _ in range(int(schema.get("minItems", 0)))]
        if kind == "boolean":
            return False
        if kind in ("integer", "number"):
            return self._clamp(schema, 0, kind)
        if kind == "object":
            return self.fill_object(schema, {}, rules)
        return None

    @staticmethod
    def _clamp(schema: dict[str, Any], value: float, kind: str) -> Any:
        if "minimum" in schema:
            value = max(value, schema["minimum"])
        if "exclusiveMinimum" in schema and isinstance(schema["exclusiveMinimum"], (int, float)):
            value = max(value, schema["exclusiveMinimum"] + 1)
        if "maximum" in schema:
            value = min(value, schema["maximum"])
        return int(value) if kind == "integer" else float(value)

    # ---------------------------------------------------------------- coercion
    def coerce(self, schema: Any, value: Any, facts: Facts, rules: Rules) -> Any:
        schema = self.resolve(schema)
        if "const" in schema:
            return schema["const"]
        for option_key in ("anyOf", "oneOf"):
            if schema.get(option_key):
                for option in schema[option_key]:
                    candidate = self.coerce(option, value, facts, rules)
                    if self.valid(self.resolve(option), candidate):
                        return candidate
                return self.default(schema, facts, rules)
        if schema.get("enum"):
            return _pick_enum(schema["enum"], value)
        types = self.types(schema)
        if value is None:
            return None if "null" in types else self.default(schema, facts, rules)
        kind = _best_type(types, value)
        if kind == "string":
            return self._string(schema, value)
        if kind in ("integer", "number"):
            return self._clamp(schema, _as_number(value), kind)
        if kind == "boolean":
            return _as_bool(value)
        if kind == "array":
            return self._array(schema, value, facts, rules)
        if kind == "object":
            if isinstance(value, dict):
                return self.fill_object(schema, value, ITEM_RULES)
            return self.fill_object(schema, facts, rules)
        return None

    def _string(self, schema: dict[str, Any], value: Any) -> str:
        fmt = schema.get("format")
        if fmt in ("date-time", "date") and isinstance(value, (int, float)) and not isinstance(value, bool):
            stamp = datetime.fromtimestamp(value / 1000, tz=timezone.utc)
            text = stamp.isoformat().replace("+00:00", "Z") if fmt == "date-time" else stamp.date().isoformat()
        else:
            text = _as_text(value)
        if schema.get("maxLength") is not None:
            text = text[: schema["maxLength"]]
        if schema.get("minLength") and len(text) < schema["minLength"]:
            text = (text or "unknown").ljust(schema["minLength"], "-")
        return text

    def _array(self, schema: dict[str, Any], value: Any, facts: Facts, rules: Rules) -> list[Any]:
        items = value if isinstance(value, (list, tuple)) else [value]
        item_schema = schema.get("items", {})
        result = [self.coerce(item_schema, item, facts, rules) for item in items]
        if schema.get("uniqueItems"):
            unique: list[Any] = []
            for item in result:
                if item not in unique:
                    unique.append(item)
            result = unique
        if schema.get("maxItems") is not None:
            result = result[: schema["maxItems"]]
        while len(result) < int(schema.get("minItems", 0)):
            result.append(self.default(item_schema, facts, rules))
        return result

    def fill_object(self, schema: dict[str, Any], facts: Facts, rules: Rules) -> dict[str, Any]:
        schema = self.resolve(schema)
        required = set(schema.get("required", []))
        result: dict[str, Any] = {}
        for name, prop in (schema.get("properties") or {}).items():
            prop_schema = self.resolve(prop)
            value = lookup(name, str(prop_schema.get("description", "")), facts, rules)
            if value is not _MISSING:
                result[name] = self.coerce(prop_schema, value, facts, rules)
            elif "object" in self.types(prop_schema) and prop_schema.get("properties"):
                nested = self.fill_object(prop_schema, facts, rules)
                if nested or name in required:
                    result[name] = nested
            elif name in required:
                result[name] = self.default(prop_schema, facts, rules)
        return result


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return "string"


def _best_type(types: list[str], value: Any) -> str:
    natural = _json_type(value)
    if natural in types or (natural == "integer" and "number" in types):
        return "number" if natural == "integer" and "integer" not in types else natural
    non_null = [t for t in types if t != "null"]
    return non_null[0] if non_null else "null"


def _as_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, dict):
        return str(value.get("description") or value.get("url") or json.dumps(value, sort_keys=True))
    if isinstance(value, (list, tuple)):
        return "; ".join(_as_text(v) for v in value)
    return str(value)


def _as_number(value: Any) -> float:
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, (list, tuple, dict)):
        return float(len(value))
    try:
        return float(str(value).strip())
    except ValueError:
        return 0.0


def _as_bool(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("yes", "true", "converted", "success", "1")
    if isinstance(value, (list, tuple, dict)):
        return bool(value)
    return bool(value)


def _pick_enum(options: list[Any], value: Any) -> Any:
    """The enum value that best matches `value`; the first one when nothing does."""
    if value in options:
        return value
    text = _as_text(value).lower() if value is not None else ""
    for option in options:
        if isinstance(option, str) and option.lower() == text:
            return option
    for option in options:
        if isinstance(option, str) and option and (option.lower() in text or (text and text in option.lower())):
            return option
    if isinstance(value, bool):
        wanted = ("yes", "true") if value else ("no", "false")
        for option in options:
            if isinstance(option, str) and option.lower() in wanted:
                return option
    return options[0]


def fill_schema(schema: dict[str, Any], facts: Facts, rules: Rules = TOP_RULES) -> Any:
    """An instance of `schema` built from `facts`; raises ValueError if none validates."""
    try:
        jsonschema.validators.validator_for(schema).check_schema(schema)
    except jsonschema.SchemaError as exc:
        raise ValueError(f"output_schema is not a valid JSON Schema: {exc.message}") from None
    filler = SchemaFiller(schema)
    answer = filler.coerce(schema, facts, facts, rules) if "object" not in filler.types(filler.resolve(schema)) \
        else filler.fill_object(schema, facts, rules)
    validator = jsonschema.validators.validator_for(schema)(schema)
    errors = sorted(validator.iter_errors(answer), key=lambda e: list(e.path))
    if not errors:
        return answer
    fallback = filler.default(schema, {}, rules)
    if validator.is_valid(fallback):
        return fallback
    error = errors[0]
    where = "/".join(str(p) for p in error.path) or "(root)"
    raise ValueError(f"cannot build an answer valid against output_schema at {where}: {error.message}")
