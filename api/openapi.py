"""The OpenAPI 3 document, built from the route table and the request models."""
from __future__ import annotations

from typing import Any, Optional

from pydantic import BaseModel

from replaylens.config.alert_rules import AlertRules
from replaylens.api.models import AskRequest, FeedbackRequest, GroupRequest, HighlightsRequest
from replaylens.schemas.profiles import SummaryProfile

ERROR_SCHEMA = {
    "type": "object", "required": ["error"],
    "properties": {"error": {"type": "object", "required": ["code", "message"], "properties": {
        "code": {"type": "string"}, "message": {"type": "string"}, "field": {"type": ["string", "null"]}}}},
}

# (method, path, summary, scope or None for public, request model, query parameters)
ROUTES: list[tuple[str, str, str, Optional[str], Optional[type[BaseModel]], list[str]]] = [
    ("get", "/health", "Liveness and whether the store has caught up with Kafka", None, None, []),
    ("get", "/openapi.json", "This document", None, None, []),
    ("post", "/v2/visit_profile", "Create (or replace) a summary profile (Fullstory)", "write", SummaryProfile, []),
    ("get", "/v2/visit_profile", "List profiles", "read", None, []),
    ("get", "/v2/visit_profile/{profile_id}", "One profile", "read", None, []),
    ("delete", "/v2/visit_profile/{profile_id}", "Delete a profile created through the API", "write", None, []),
    ("get", "/v2/sessions/{session_id}/summary", "A session's summary with a profile, generated on demand "
     "(Fullstory); session_id may be URL-encoded userId:sessionId", "read", None, ["config_profile"]),
    ("get", "/sessions/v2", "A user's sessions, newest first (Fullstory)", "read", None, ["uid", "email", "limit"]),
    ("post", "/v1/highlights", "Request highlights, posted to webhookURL when ready (LogRocket)", "write",
     HighlightsRequest, []),
    ("post", "/v1/orgs/{org_id}/apps/{app_id}/highlights/", "LogRocket's own path for highlights requests "
     "(appID in the payload is org_id/app_id)", "write", HighlightsRequest, []),
    ("post", "/v1/orgs/{org_id}/apps/{app_id}/highlights", "The same without the trailing slash", "write",
     HighlightsRequest, []),
    ("get", "/v1/highlights/{request_id}", "State of a highlights request (delivery, attempts)", "read", None, []),
    ("post", "/v1/group-summaries", "Group summary of up to 100 sessions (Heap)", "read", GroupRequest, []),
    ("post", "/v1/sessions/{session_id}/ask", "Ask a question about one session", "read", AskRequest, []),
    ("post", "/v1/summaries/{session_id}/feedback", "Thumbs up/down on a summary", "write", FeedbackRequest, []),
    ("get", "/v1/feedback/counts", "Feedback counted per profile and summarizer", "read", None, []),
    ("get", "/v1/status", "Worker counters (from each worker's status.json) and API counters", "read", None, []),
    ("get", "/v1/alerts/rules", "The alert rules in force, and whether they come from the API or the settings",
     "read", None, []),
    ("put", "/v1/alerts/rules", "Set the alert rules (keys not given keep the settings' values); running workers "
     "apply them at their next evaluation; window_ms and step_ms only change with a restart", "write", AlertRules, []),
    ("delete", "/v1/alerts/rules", "Back to the alert rules of the settings", "write", None, []),
]


def _operation(method: str, path: str, summary: str, scope: Optional[str],
               model: Optional[type[BaseModel]], query: list[str], components: dict[str, Any]) -> dict[str, Any]:
    op: dict[str, Any] = {"summary": summary, "responses": {
        "200": {"description": "OK"},
        "400": {"description": "Invalid input", "content": {"application/json": {"schema": ERROR_SCHEMA}}}}}
    params = [{"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
              for name in _path_names(path)]
    params += [{"name": name, "in": "query", "required": name == "config_profile",
                "schema": {"type": "integer" if name == "limit" else "string"}} for name in query]
    if params:
        op["parameters"] = params
    if model is not None:
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        components.update(schema.pop("$defs", {}))
        op["requestBody"] = {"required": True, "content": {"application/json": {"schema": schema}}}
    if scope is None:
        op["security"] = []
    else:
        op["x-scope"] = scope
        op["responses"].update({"401": {"description": "Missing or unknown API key"},
                                "403": {"description": f"The key lacks the {scope!r} scope"},
                                "429": {"description": "Rate limit of the key exceeded"}})
    return op


def _path_names(path: str) -> list[str]:
    return [part[1:-1] for part in path.split("/") if part.startswith("{") and part.endswith("}")]


def document(version: str) -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    schemas: dict[str, Any] = {"Error": ERROR_SCHEMA}
    for method, path, summary, scope, model, query in ROUTES:
        paths.setdefault(path, {})[method] = _operation(method, path, summary, scope, model, query, schemas)
    return {
        "openapi": "3.1.0",
        "info": {"title": "replaylens API", "version": version,
                 "description": "Session summaries, sessions by user, highlights with webhooks, "
                                "group summaries, questions and feedback."},
        "paths": paths,
        "components": {"schemas": schemas, "securitySchemes": {
            "bearer": {"type": "http", "scheme": "bearer"},
            "token": {"type": "apiKey", "in": "header", "name": "Authorization",
                      "description": "LogRocket style: `token <key>`"}}},
        "security": [{"bearer": []}, {"token": []}],
    }
