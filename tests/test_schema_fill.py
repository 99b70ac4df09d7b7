"""sinks/schema_fill.py: a profile's JSON Schema filled from deterministic facts."""
from __future__ import annotations

import jsonschema
import pytest

from replaylens.sinks.schema_fill import ITEM_RULES, TOP_RULES, fill_schema, lookup

FACTS = {"summary": "Viewed 2 pages.", "goal": "Sign up", "issues": [
    {"description": "Sign-up blocked", "type": "error", "severity": "high", "timestamp": 5, "url": "u"}],
    "converted": False, "duration_ms": 65_000, "pages": ["/", "/signup"], "outcome": "abandoned"}


def test_properties_are_found_by_name_then_by_description():
    assert lookup("primaryGoal", "", FACTS, TOP_RULES) == "Sign up"
    assert lookup("x", "What went wrong (problems)", FACTS, TOP_RULES) == FACTS["issues"]
    assert lookup("severity", "", FACTS["issues"][0], ITEM_RULES) == "high"


def test_types_are_coerced_and_the_answer_is_valid():
    schema = {"type": "object", "required": ["goal", "issue_count", "converted", "pages", "issues", "length_s"],
              "properties": {"goal": {"type": "string", "maxLength": 4}, "issue_count": {"type": "integer"},
                             "converted": {"type": "string", "enum": ["yes", "no"]},
                             "pages": {"type": "string"}, "length_s": {"type": "number"},
                             "issues": {"type": "array", "items": {"type": "object", "properties": {
                                 "text": {"type": "string"}, "level": {"enum": ["low", "high"]}}}}}}
    answer = fill_schema(schema, FACTS)
    jsonschema.validate(answer, schema)
    assert answer["goal"] == "Sign" and answer["issue_count"] == 1 and answer["converted"] == "no"
    assert answer["pages"] == "/; /signup" and answer["issues"] == [{"text": "Sign-up blocked", "level": "high"}]


def test_an_unsatisfiable_schema_fails_with_where():
    with pytest.raises(ValueError, match="output_schema"):
        fill_schema({"type": "object", "required": ["a"], "properties": {"a": {"type": "string", "pattern": "^Z{3}$"}}},
                    FACTS)
