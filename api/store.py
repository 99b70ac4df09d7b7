"""The API's own DuckDB file (DuckDB has one writer per file: never a worker's file).

Materialized from Kafka (closed sessions, summaries, feedback), with the offsets applied stored
in the same transaction as the rows, so a restart resumes exactly where it stopped and a lost
file is rebuilt from the topics. Sessions are indexed by session id, user id and the email's
keyed hash; the email itself is not stored (the session body keeps it masked). Highlight
requests live here too, so a restarted API re-sends pending webhooks.

Every method is blocking; the API calls them through `asyncio.to_thread` (see `run`).
"""
from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Optional, TypeVar

import duckdb
import orjson

from replaylens.config.privacy import mask_email

T = TypeVar("T")

SCHEMA = """
CREATE TABLE IF NOT EXISTS sessions (
    window_id VARCHAR PRIMARY KEY, session_id VARCHAR NOT NULL, part INTEGER NOT NULL,
    user_id VARCHAR, email_key VARCHAR, started_at BIGINT NOT NULL, ended_at BIGINT NOT NULL,
    first_url VARCHAR, body JSON NOT NULL);
CREATE INDEX IF NOT EXISTS sessions_by_session ON sessions (session_id);
CREATE INDEX IF NOT EXISTS sessions_by_user ON sessions (user_id);
CREATE INDEX IF NOT EXISTS sessions_by_email ON sessions (email_key);
CREATE TABLE IF NOT EXISTS summaries (
    idempotency_key VARCHAR PRIMARY KEY, session_id VARCHAR NOT NULL, window_id VARCHAR NOT NULL,
    profile_id VARCHAR NOT NULL, status VARCHAR NOT NULL, summarizer VARCHAR NOT NULL,
    generated_at BIGINT NOT NULL, body JSON NOT NULL);
CREATE INDEX IF NOT EXISTS summaries_by_session ON summaries (session_id, profile_id);
CREATE TABLE IF NOT EXISTS feedback (
    feedback_id VARCHAR PRIMARY KEY, session_id VARCHAR NOT NULL, profile_id VARCHAR NOT NULL,
    summarizer VARCHAR NOT NULL, rating VARCHAR NOT NULL, comment VARCHAR, created_at BIGINT NOT NULL);
CREATE OR REPLACE VIEW feedback_counts AS
    SELECT profile_id, summarizer, count(*) FILTER (WHERE rating = 'up') AS up,
           count(*) FILTER (WHERE rating = 'down') AS down, count(*) AS total
    FROM feedback GROUP BY profile_id, summarizer;
CREATE TABLE IF NOT EXISTS highlight_requests (
    request_id VARCHAR PRIMARY KEY, user_id VARCHAR, email_key VARCHAR, start_ms BIGINT NOT NULL,
    end_ms BIGINT NOT NULL, webhook_url VARCHAR NOT NULL, app_id VARCHAR NOT NULL, state VARCHAR NOT NULL,
    result_status VARCHAR, payload JSON, attempts INTEGER NOT NULL DEFAULT 0, last_error VARCHAR,
    created_at BIGINT NOT NULL, updated_at BIGINT NOT NULL);
CREATE TABLE IF NOT EXISTS offsets (
    topic VARCHAR NOT NULL, "partition" INTEGER NOT NULL, next_offset BIGINT NOT NULL,
    PRIMARY KEY (topic, "partition"));
"""

# Highlight request states: generating/delivering survive a restart and are resumed.
PENDING_STATES = ("PENDING", "GENERATED")
DELIVERED, UNDELIVERED = "DELIVERED", "UNDELIVERED"


EmailKey = Callable[[Optional[str]], Optional[str]]

def _user_of(session: dict[str, Any]) -> dict[str, Any]:
    return ((session.get("context") or {}).get("user")) or {}


def redact_session(session: dict[str, Any]) -> dict[str, Any]:
    """The session as stored and served: every user email masked (j***@example.com)."""
    def masked(user: Any) -> Any:
        if isinstance(user, dict) and user.get("email"):
            return {**user, "email": mask_email(str(user["email"]))}
        return user

    out = dict(session)
    if isinstance(out.get("context"), dict):
        out["context"] = {**out["context"], "user": masked(out["context"].get("user"))}
    if isinstance(out.get("events"), list):
        out["events"] = [{**e, "user": masked(e["user"])} if isinstance(e, dict) and e.get("user") else e
                         for e in out["events"]]
    return out


def session_row(session: dict[str, Any], email_key: EmailKey) -> Optional[tuple]:
    """The sessions-table row of a closed session, or None when it lacks what a row needs."""
    try:
        session_id = str(session["session_id"])
        started_at, ended_at = int(session["started_at"]), int(session["ended_at"])
    except (KeyError, TypeError, ValueError):
        return None
    user = _user_of(session)
    pages = session.get("pages") or []
    first_url = pages[0].get("url") if pages and isinstance(pages[0], dict) else None
    return (str(session.get("window_id") or f"{session_id}@{started_at}"), session_id,
            int(session.get("part") or 1), user.get("id"), email_key(user.get("email")),
            started_at, ended_at, first_url, orjson.dumps(redact_session(session)).decode())


def summary_row(summary: dict[str, Any]) -> Optional[tuple]:
    try:
        return (summary["idempotency_key"], summary["session_id"], summary["window_id"],
                summary["profile_id"], summary["status"], summary["summarizer"],
                int(summary["generated_at"]), orjson.dumps(summary).decode())
    except (KeyError, TypeError, ValueError):
        return None


def feedback_row(feedback: dict[str, Any]) -> Optional[tuple]:
    try:
        return (feedback["feedback_id"], feedback["session_id"], feedback["profile_id"],
                feedback["summarizer"], feedback["rating"], feedback.get("comment"),
                int(feedback["created_at"]))
    except (KeyError, TypeError, ValueError):
        return None


class ApiStore:
    def __init__(self, path: Path | str, email_key: EmailKey) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._email_key = email_key  # the privacy policy's keyed hash (same on both sides)
        self._lock = threading.Lock()
        self._db = duckdb.connect(str(self.path))
        self._db.execute(SCHEMA)

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """Run a blocking store method off the event loop."""
        return await asyncio.to_thread(fn, *args)

    def _query(self, sql: str, params: Iterable[Any] = ()) -> list[tuple]:
        with self._lock:
            return self._db.execute(sql, list(params)).fetchall()

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # -- materialization ----------------------------------------------------------------------
    def offsets(self) -> dict[tuple[str, int], int]:
        return {(t, p): o for t, p, o in self._query("SELECT topic, \"partition\", next_offset FROM offsets")}

    def apply(self, topics: dict[str, str], records: list[tuple[str, int, int, Optional[bytes]]]) -> int:
        """Apply (topic, partition, offset, value) records and their offsets in one transaction.

        `topics` maps topic names to kinds: "closed", "summaries", "feedback". Records that are
        not valid JSON objects of their kind are skipped (counted as applied offsets all the same).
        """
        rows: dict[str, list[tuple]] = {"closed": [], "summaries": [], "feedback": []}
        next_offsets: dict[tuple[str, int], int] = {}
        for topic, partition, offset, value in records:
            next_offsets[(topic, partition)] = max(next_offsets.get((topic, partition), 0), offset + 1)
            kind = topics[topic]
            try:
                data = orjson.loads(value) if value is not None else None
            except orjson.JSONDecodeError:
                continue
            if not isinstance(data, dict):
                continue
            row = {"closed": lambda d: session_row(d, self._email_key), "summaries": summary_row,
                   "feedback": feedback_row}[kind](data)
            if row is not None:
                rows[kind].append(row)
        with self._lock:
            self._db.execute("BEGIN")
            try:
                self._insert_rows(rows)
                self._db.executemany(
                    "INSERT OR REPLACE INTO offsets VALUES (?, ?, ?)",
                    [(t, p, o) for (t, p), o in next_offsets.items()])
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return sum(len(r) for r in rows.values())

    def _insert_rows(self, rows: dict[str, list[tuple]]) -> None:
        if rows["closed"]:
            self._db.executemany("INSERT OR REPLACE INTO sessions VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                                 rows["closed"])
        if rows["summaries"]:
            self._db.executemany("INSERT OR REPLACE INTO summaries VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                                 rows["summaries"])
        if rows["feedback"]:
            self._db.executemany("INSERT OR IGNORE INTO feedback VALUES (?, ?, ?, ?, ?, ?, ?)",
                                 rows["feedback"])

    def put_summary(self, summary: dict[str, Any]) -> None:
        row = summary_row(summary)
        if row is not None:
            with self._lock:
                self._db.execute("INSERT OR REPLACE INTO summaries VALUES (?, ?, ?, ?, ?, ?, ?, ?)", row)

    def put_feedback(self, feedback: dict[str, Any]) -> None:
        row = feedback_row(feedback)
        if row is not None:
            with self._lock:
                self._db.execute("INSERT OR IGNORE INTO feedback VALUES (?, ?, ?, ?, ?, ?, ?)", row)

    # -- reads -------------------------------------------------------------------------------
    def windows(self, session_id: str) -> list[dict[str, Any]]:
        """Every stored window (part) of a session, oldest first."""
        rows = self._query("SELECT body FROM sessions WHERE session_id = ? ORDER BY started_at, part",
                           [session_id])
        return [orjson.loads(r[0]) for r in rows]

    def user_of_session(self, session_id: str) -> Optional[str]:
        rows = self._query("SELECT user_id FROM sessions WHERE session_id = ? LIMIT 1", [session_id])
        return rows[0][0] if rows else None

    def summary_by_key(self, idempotency_key: str) -> Optional[dict[str, Any]]:
        rows = self._query("SELECT body FROM summaries WHERE idempotency_key = ?", [idempotency_key])
        return orjson.loads(rows[0][0]) if rows else None

    def latest_summary(self, session_id: str, profile_id: str) -> Optional[dict[str, Any]]:
        rows = self._query("SELECT body FROM summaries WHERE session_id = ? AND profile_id = ? "
                           "ORDER BY generated_at DESC LIMIT 1", [session_id, profile_id])
        return orjson.loads(rows[0][0]) if rows else None

    def email_key(self, email: Optional[str]) -> Optional[str]:
        return self._email_key(email) if email else None

    @staticmethod
    def _who(user_id: Optional[str], email_key: Optional[str]) -> tuple[str, list[Any]]:
        if user_id is not None:
            return "user_id = ?", [user_id]
        return "email_key = ?", [email_key]

    def sessions_of_user(self, user_id: Optional[str], email_key: Optional[str], limit: int) -> list[dict[str, Any]]:
        """One row per session id, newest first: user id, session id, first start, first URL."""
        where, params = self._who(user_id, email_key)
        rows = self._query(
            f"SELECT session_id, any_value(user_id), min(started_at) AS created, arg_min(first_url, started_at) "
            f"FROM sessions WHERE {where} GROUP BY session_id ORDER BY created DESC, session_id LIMIT ?",
            params + [limit])
        return [{"session_id": s, "user_id": u, "started_at": c, "first_url": f} for s, u, c, f in rows]

    def windows_of_user(self, user_id: Optional[str], email_key: Optional[str], start_ms: int, end_ms: int,
                        limit: int) -> list[dict[str, Any]]:
        """The user's most recent windows overlapping [start_ms, end_ms], newest first."""
        where, params = self._who(user_id, email_key)
        rows = self._query(
            f"SELECT body FROM sessions WHERE {where} AND ended_at >= ? AND started_at <= ? "
            f"ORDER BY started_at DESC LIMIT ?", params + [start_ms, end_ms, limit])
        return [orjson.loads(r[0]) for r in rows]

    def candidate_sessions(self, start_ms: Optional[int], end_ms: Optional[int], user_id: Optional[str],
                           limit: int) -> list[dict[str, Any]]:
        """Windows for a group summary, newest first, prefiltered by time and user, each with its
        stored default-profile summary (group summaries then reuse its issues)."""
        clauses, params = ["TRUE"], []
        if start_ms is not None:
            clauses.append("s.ended_at >= ?")
            params.append(start_ms)
        if end_ms is not None:
            clauses.append("s.started_at <= ?")
            params.append(end_ms)
        if user_id is not None:
            clauses.append("s.user_id = ?")
            params.append(user_id)
        rows = self._query(
            "SELECT s.body, (SELECT m.body FROM summaries m WHERE m.window_id = s.window_id "
            "AND m.profile_id = 'default' AND m.status = 'READY' ORDER BY m.generated_at DESC LIMIT 1) "
            f"FROM sessions s WHERE {' AND '.join(clauses)} ORDER BY s.started_at DESC LIMIT ?",
            params + [limit])
        out = []
        for body, summary in rows:
            session = orjson.loads(body)
            if summary is not None:
                session["summary"] = orjson.loads(summary)
            out.append(session)
        return out

    def feedback_counts(self) -> list[dict[str, Any]]:
        rows = self._query("SELECT profile_id, summarizer, up, down, total FROM feedback_counts "
                           "ORDER BY profile_id, summarizer")
        return [{"profile_id": p, "summarizer": s, "up": u, "down": d, "total": t} for p, s, u, d, t in rows]

    def counts(self) -> dict[str, int]:
        (sessions, users), = self._query("SELECT count(*), count(DISTINCT user_id) FROM sessions")
        (summaries,), = self._query("SELECT count(*) FROM summaries")
        (feedback,), = self._query("SELECT count(*) FROM feedback")
        return {"sessions": sessions, "users": users, "summaries": summaries, "feedback": feedback}

    # -- highlight requests ------------------------------------------------------------------
    def add_highlight_request(self, request_id: str, user_id: Optional[str], email_key: Optional[str],
                              start_ms: int, end_ms: int, webhook_url: str, app_id: str) -> None:
        now = int(time.time() * 1000)
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO highlight_requests (request_id, user_id, email_key, start_ms, end_ms, "
                "webhook_url, app_id, state, result_status, payload, attempts, last_error, created_at, updated_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, 'PENDING', NULL, NULL, 0, NULL, ?, ?)",
                [request_id, user_id, email_key, start_ms, end_ms, webhook_url, app_id, now, now])

    def set_highlight_payload(self, request_id: str, result_status: str, payload: dict[str, Any],
                              error: Optional[str]) -> None:
        with self._lock:
            self._db.execute(
                "UPDATE highlight_requests SET state = 'GENERATED', result_status = ?, payload = ?, "
                "last_error = ?, updated_at = ? WHERE request_id = ?",
                [result_status, orjson.dumps(payload).decode(), error, int(time.time() * 1000), request_id])

    def finish_highlight(self, request_id: str, delivered: bool, attempts: int, error: Optional[str]) -> None:
        with self._lock:
            self._db.execute(
                "UPDATE highlight_requests SET state = ?, attempts = attempts + ?, last_error = coalesce(?, last_error), "
                "updated_at = ? WHERE request_id = ?",
                [DELIVERED if delivered else UNDELIVERED, attempts, error, int(time.time() * 1000), request_id])

    def highlight_request(self, request_id: str) -> Optional[dict[str, Any]]:
        rows = self._query(
            "SELECT request_id, user_id, email_key, start_ms, end_ms, webhook_url, app_id, state, result_status, "
            "payload, attempts, last_error, created_at, updated_at FROM highlight_requests WHERE request_id = ?",
            [request_id])
        if not rows:
            return None
        names = ("request_id", "user_id", "email_key", "start_ms", "end_ms", "webhook_url", "app_id", "state",
                 "result_status", "payload", "attempts", "last_error", "created_at", "updated_at")
        out = dict(zip(names, rows[0]))
        out["payload"] = orjson.loads(out["payload"]) if out["payload"] else None
        return out

    def pending_highlights(self) -> list[str]:
        rows = self._query("SELECT request_id FROM highlight_requests WHERE state IN (?, ?) ORDER BY created_at",
                           list(PENDING_STATES))
        return [r[0] for r in rows]
