"""The DuckDB store of rolling per-URL aggregates (schema: aggregates/SCHEMA.md).

One process writes one DuckDB file: every worker keeps its own file and applies ALL deltas
of the url-deltas topic to it; deltas are additive and idempotent by `delta_id`, so every
file converges to the same figures whatever the order or redelivery.

A batch of deltas is applied in one transaction with a handful of set-based statements
(lists bound as parameters and `unnest`ed), never a round trip per row.

Baselines (`url_stats`) are read from memory (aggregates/baselines.py): each URL's window is
loaded once from the hourly rows and hourly web-vital sketches, then kept current by `apply`,
so a read costs the same whatever the number of samples stored.
"""
from __future__ import annotations

import threading
from pathlib import Path
from typing import Any, Iterable, Optional, Sequence, Union

import duckdb

from replaylens.aggregates.arithmetic import UrlStats, window_start
from replaylens.aggregates.baselines import BaselineWindows, Rows, Totals
from replaylens.aggregates.deltas import COUNTERS, SITE_URL, VITALS, UrlDelta, merge_rows
from replaylens.aggregates.sketch import GAMMA, QUANTILES, ZERO_BIN, bins_of

# 2: hourly web-vital sketches (`vital_sketches`); a file of schema 1 gets them from its samples.
SCHEMA_VERSION = "2"
_SCHEMA_WITHOUT_SKETCHES = "1"
TABLES = ("url_hourly", "vital_samples", "vital_sketches", "applied_deltas", "meta")
VIEWS = ("url_stats", "site_stats")
EXPORTABLE = ("url_hourly", "vital_samples", "vital_sketches", "url_stats", "site_stats", "applied_deltas")
DEFAULT_EXPORT = ("url_hourly", "vital_samples", "vital_sketches", "url_stats", "site_stats")
_HOUR = 3_600_000

_COUNTER_COLUMNS = ",\n    ".join(f"{name} BIGINT NOT NULL DEFAULT 0" for name in COUNTERS)
_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS meta (key VARCHAR PRIMARY KEY, value VARCHAR NOT NULL);
CREATE TABLE IF NOT EXISTS url_hourly (
    bucket TIMESTAMP NOT NULL,
    url VARCHAR NOT NULL,
    {_COUNTER_COLUMNS},
    PRIMARY KEY (bucket, url)
);
CREATE TABLE IF NOT EXISTS vital_samples (
    bucket TIMESTAMP NOT NULL,
    url VARCHAR NOT NULL,
    metric VARCHAR NOT NULL,
    value DOUBLE NOT NULL
);
CREATE TABLE IF NOT EXISTS vital_sketches (
    bucket TIMESTAMP NOT NULL,
    url VARCHAR NOT NULL,
    metric VARCHAR NOT NULL,
    bin INTEGER NOT NULL,
    count BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS applied_deltas (
    delta_id VARCHAR PRIMARY KEY,
    bucket TIMESTAMP NOT NULL
);
"""


def _stats_macro(window_days: int) -> str:
    sums = ",\n        ".join(f"sum({name})::BIGINT AS {name}" for name in COUNTERS)
    # Per (url, metric): the window's bins summed, a running count in bin order, and the first
    # bin whose running count reaches each nearest rank ceil(q * n); then one row per url.
    vitals = ",\n        ".join(
        f"max(samples) FILTER (WHERE metric = '{m}') AS {m}_samples,\n"
        f"        sketch_value(max(p75_bin) FILTER (WHERE metric = '{m}')) AS {m}_p75,\n"
        f"        sketch_value(max(median_bin) FILTER (WHERE metric = '{m}')) AS {m}_median"
        for m in VITALS
    )
    first_bin = " ,\n            ".join(
        f"min(bin) FILTER (WHERE upto >= greatest(ceil({q} * total), 1)) AS {name}_bin"
        for q, name in zip(QUANTILES, ("p75", "median")))
    vital_columns = ", ".join(f"coalesce(v.{m}_samples, 0) AS {m}_samples, v.{m}_p75, v.{m}_median" for m in VITALS)
    start = f"epoch_ms(now_ms - now_ms % {_HOUR} - (window_days * 24 - 1) * {_HOUR})"
    in_window = f"bucket BETWEEN {start} AND epoch_ms(now_ms - now_ms % {_HOUR})"
    return f"""
CREATE OR REPLACE MACRO sketch_value(b) AS
    CASE WHEN b = {ZERO_BIN} THEN 0.0 ELSE 2.0 * pow({GAMMA!r}, b) / ({GAMMA!r} + 1.0) END;
CREATE OR REPLACE MACRO url_stats_at(now_ms, window_days := {int(window_days)}) AS TABLE
WITH counters AS (
    SELECT url,
        {sums}
    FROM url_hourly WHERE {in_window} GROUP BY url
), vitals AS (
    SELECT url,
        {vitals}
    FROM (
        SELECT url, metric, max(total)::BIGINT AS samples,
            {first_bin}
        FROM (
            SELECT url, metric, bin,
                sum(n) OVER (PARTITION BY url, metric ORDER BY bin ROWS UNBOUNDED PRECEDING) AS upto,
                sum(n) OVER (PARTITION BY url, metric) AS total
            FROM (SELECT url, metric, bin, sum(count) AS n FROM vital_sketches WHERE {in_window}
                  GROUP BY url, metric, bin)
        ) GROUP BY url, metric
    ) GROUP BY url
)
SELECT c.url,
    {start} AS window_start,
    {", ".join(f"c.{name}" for name in COUNTERS)},
    c.bounces / nullif(c.entries, 0) AS bounce_rate,
    c.exits / nullif(c.pageviews, 0) AS exit_rate,
    c.time_on_page_ms / nullif(c.time_on_page_count, 0) AS avg_time_on_page_ms,
    c.js_errors / nullif(c.visits, 0) AS js_errors_per_visit,
    c.api_errors / nullif(c.visits, 0) AS api_errors_per_visit,
    c.sessions_with_frustration / nullif(c.visits, 0) AS frustration_share,
    {vital_columns}
FROM counters c LEFT JOIN vitals v USING (url);
CREATE OR REPLACE VIEW url_stats AS
    SELECT * FROM url_stats_at((SELECT epoch_ms(max(bucket)) FROM url_hourly)) WHERE url <> '{SITE_URL}';
CREATE OR REPLACE VIEW site_stats AS
    SELECT * FROM url_stats_at((SELECT epoch_ms(max(bucket)) FROM url_hourly)) WHERE url = '{SITE_URL}';
"""


class StoreLockedError(RuntimeError):
    pass


class ReadOnlyQueryError(ValueError):
    """A query that `query_select` refuses: only one SELECT statement is run."""


# DuckDB's own switches for a confined connection (`confined=True`): no file, network or
# extension access beyond the database itself (and the directories allowed for an export),
# and the configuration locked so no statement can undo it. Set in this order: DuckDB refuses
# allowed_directories once external access is off, and everything once the lock is on.
_NO_EXTENSIONS = {"autoinstall_known_extensions": False, "autoload_known_extensions": False,
                  "allow_community_extensions": False}


def _confine(con: "duckdb.DuckDBPyConnection", allowed_directories: Sequence[Union[str, Path]]) -> None:
    if allowed_directories:
        dirs = [str(Path(d).resolve()).rstrip("/") + "/" for d in allowed_directories]
        con.execute("SET allowed_directories = ?", [dirs])
    con.execute("SET enable_external_access = false")
    con.execute("SET lock_configuration = true")


class AggregateStore:
    """Rolling per-URL aggregates in one DuckDB file, written by one process."""

    def __init__(
        self,
        path: Union[str, Path],
        window_days: int = 7,
        retention_days: int = 30,
        read_only: bool = False,
        confined: bool = False,
        allowed_directories: Sequence[Union[str, Path]] = (),
        keep_vital_samples: bool = True,
    ) -> None:
        """`confined` (for the command line's `sql` and `export`): read-only, no access to any
        file but this one and `allowed_directories`, no extensions, configuration locked.
        `keep_vital_samples`: also store every raw web-vital sample (`vital_samples`, for
        analytics); baselines never read them."""
        if window_days < 1:
            raise ValueError("window_days must be at least 1")
        if retention_days < window_days:
            raise ValueError(f"retention_days ({retention_days}) must cover the window ({window_days} days)")
        self.path = Path(path)
        self.window_days = window_days
        self.retention_days = retention_days
        self.read_only = read_only
        self.keep_vital_samples = keep_vital_samples
        self._lock = threading.Lock()
        self.baselines = BaselineWindows(window_days, self._load_totals)
        if read_only and not self.path.exists():
            raise FileNotFoundError(f"no aggregates database at {self.path}")
        if not read_only:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        if confined and not read_only:
            raise ValueError("a confined store is read-only")
        try:
            self._con = duckdb.connect(str(self.path), read_only=read_only,
                                       config=dict(_NO_EXTENSIONS) if confined else {})
        except duckdb.IOException as exc:
            raise StoreLockedError(
                f"cannot open {self.path}: {exc}. DuckDB lets one process write a file: "
                "is a worker running on it? Each worker needs its own duckdb_path."
            ) from exc
        if confined:
            _confine(self._con, allowed_directories)
        if not read_only:
            self._create_schema()
        self._pruned_before = int(self._meta("pruned_before") or -(2**62))
        # Transactions this object committed that changed the figures: a reader may keep what it
        # read for as long as this stays the same (streams/alerting.py AggregateBaselines).
        self.writes = 0

    @classmethod
    def from_settings(cls, settings, path: Optional[Union[str, Path]] = None, read_only: bool = False) -> "AggregateStore":
        return cls(
            path or settings.duckdb_path,
            window_days=settings.aggregate_window_days,
            retention_days=settings.aggregate_retention_days,
            read_only=read_only,
            keep_vital_samples=settings.aggregate_keep_vital_samples,
        )

    # -- schema -------------------------------------------------------------------------
    def _create_schema(self) -> None:
        with self._lock:
            self._con.execute("BEGIN")
            try:
                self._con.execute(_SCHEMA)
                version = self._con.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
                if version is not None and version[0] == _SCHEMA_WITHOUT_SKETCHES:
                    self._sketch_samples()
                elif version is not None and version[0] != SCHEMA_VERSION:
                    raise RuntimeError(
                        f"{self.path} has aggregates schema {version[0]}, this code writes {SCHEMA_VERSION}"
                    )
                self._con.execute(
                    "INSERT OR REPLACE INTO meta VALUES ('schema_version', ?), ('window_days', ?), ('retention_days', ?)",
                    [SCHEMA_VERSION, str(self.window_days), str(self.retention_days)],
                )
                self._con.execute(_stats_macro(self.window_days))
                self._con.execute("COMMIT")
            except BaseException:
                self._con.execute("ROLLBACK")
                raise

    def _sketch_samples(self) -> None:
        """Schema 1 -> 2: the hourly sketches of the samples a file of schema 1 holds."""
        hours = self._con.execute("SELECT DISTINCT epoch_ms(bucket) FROM vital_samples ORDER BY 1").fetchall()
        for (hour,) in hours:  # an hour's samples at a time: memory stays bounded
            rows: Rows = {}
            for url, metric, values in self._con.execute(
                    "SELECT url, metric, list(value) FROM vital_samples WHERE bucket = epoch_ms(?) GROUP BY ALL",
                    [hour]).fetchall():
                rows.setdefault((hour, url), ((), {}))[1][metric] = bins_of(values)
            self._insert_sketches(rows)

    def _meta(self, key: str) -> Optional[str]:
        with self._lock:
            try:
                row = self._con.execute("SELECT value FROM meta WHERE key = ?", [key]).fetchone()
            except duckdb.CatalogException:
                return None
        return row[0] if row else None

    # -- writing ------------------------------------------------------------------------
    def apply(self, deltas: Iterable[Union[UrlDelta, dict[str, Any]]]) -> int:
        """Applies a batch of deltas in one transaction; returns how many were new.

        A delta already applied (same delta_id) is skipped, as is one whose bucket was
        already pruned (its id may be gone, so it could otherwise count twice).
        """
        unique: dict[str, UrlDelta] = {}
        for delta in deltas:
            if not isinstance(delta, UrlDelta):
                delta = UrlDelta.from_dict(delta)
            if delta.bucket >= self._pruned_before:
                unique.setdefault(delta.delta_id, delta)
        if not unique:
            return 0
        with self._lock:
            con = self._con
            con.execute("BEGIN")
            try:
                inserted = con.execute(
                    "INSERT OR IGNORE INTO applied_deltas "
                    "SELECT unnest(?::VARCHAR[]), epoch_ms(unnest(?::BIGINT[])) RETURNING delta_id",
                    [list(unique), [d.bucket for d in unique.values()]],
                ).fetchall()
                fresh = [unique[row[0]] for row in inserted]
                rows: Rows = {}
                if fresh:
                    rows = self._add(merge_rows(fresh))
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise
            self.baselines.add(rows)  # committed: the baselines in memory count them too
            self.writes += 1
        return len(fresh)

    def _add(self, merged: dict[tuple[int, str], tuple[list[int], dict[str, list[float]]]]) -> Rows:
        """Writes merged rows; returns them with their samples as sketch bins (for the baselines)."""
        keys = list(merged)
        columns_of_counters = list(zip(*(counters for counters, _ in merged.values())))
        columns = ", ".join(COUNTERS)
        unnests = ", ".join("unnest(?::BIGINT[])" for _ in COUNTERS)
        updates = ", ".join(f"{name} = url_hourly.{name} + excluded.{name}" for name in COUNTERS)
        self._con.execute(
            f"INSERT INTO url_hourly (bucket, url, {columns}) "
            f"SELECT epoch_ms(unnest(?::BIGINT[])), unnest(?::VARCHAR[]), {unnests} "
            f"ON CONFLICT (bucket, url) DO UPDATE SET {updates}",
            [[k[0] for k in keys], [k[1] for k in keys], *(list(column) for column in columns_of_counters)],
        )
        # Vital samples bound grouped, one list of values per (bucket, url, metric): binding a
        # bucket, url and metric per sample costs DuckDB a value conversion each (5x the time).
        buckets, urls, metrics, values = [], [], [], []
        for (bucket, url), (_, vitals) in merged.items():
            for metric, samples in vitals.items():
                if samples:
                    buckets.append(bucket)
                    urls.append(url)
                    metrics.append(metric)
                    values.append(samples)
        if values and self.keep_vital_samples:
            self._con.execute(
                "INSERT INTO vital_samples SELECT epoch_ms(g.bucket), g.url, g.metric, unnest(g.samples) FROM "
                "(SELECT unnest(?::BIGINT[]) AS bucket, unnest(?::VARCHAR[]) AS url, "
                "unnest(?::VARCHAR[]) AS metric, unnest(?::DOUBLE[][]) AS samples) AS g",
                [buckets, urls, metrics, values],
            )
        rows: Rows = {key: (counters, {m: bins_of(v) for m, v in vitals.items() if v})
                      for key, (counters, vitals) in merged.items()}
        self._insert_sketches(rows)
        return rows

    def _insert_sketches(self, rows: Rows) -> None:
        """Appends rows' bins to `vital_sketches` (one statement). Appended, not upserted: an
        upsert on (bucket, url, metric, bin) cost DuckDB ~10x the append; readers sum the counts
        of a bin's rows and `prune` compacts them to one row per bin."""
        # Bound grouped, lists of bins and counts per (bucket, url, metric), as the samples are:
        # a value per row would cost DuckDB a conversion each (~10x the time).
        buckets, urls, metrics, bins, counts = [], [], [], [], []
        for (bucket, url), (_, vitals) in rows.items():
            for metric, per_bin in vitals.items():
                buckets.append(bucket)
                urls.append(url)
                metrics.append(metric)
                bins.append(list(per_bin))
                counts.append(list(per_bin.values()))
        if bins:
            self._con.execute(
                "INSERT INTO vital_sketches SELECT epoch_ms(g.bucket), g.url, g.metric, unnest(g.bins), unnest(g.counts) "
                "FROM (SELECT unnest(?::BIGINT[]) AS bucket, unnest(?::VARCHAR[]) AS url, unnest(?::VARCHAR[]) AS metric, "
                "unnest(?::INTEGER[][]) AS bins, unnest(?::BIGINT[][]) AS counts) AS g",
                [buckets, urls, metrics, bins, counts],
            )

    def prune(self, now_ms: int) -> dict[str, int]:
        """Deletes buckets older than the retention window ending at now_ms; returns row counts."""
        cutoff = window_start(now_ms, self.retention_days)
        deleted: dict[str, int] = {}
        with self._lock:
            con = self._con
            con.execute("BEGIN")
            try:
                for table in ("url_hourly", "vital_samples", "vital_sketches", "applied_deltas"):
                    row = con.execute(f"DELETE FROM {table} WHERE bucket < epoch_ms(?)", [cutoff]).fetchone()
                    deleted[table] = int(row[0]) if row else 0
                self._compact_sketches()
                cutoff = max(cutoff, self._pruned_before)
                con.execute("INSERT OR REPLACE INTO meta VALUES ('pruned_before', ?)", [str(cutoff)])
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise
            if any(deleted.values()):
                self.baselines.clear()  # windows loaded before may hold deleted hours
            self.writes += 1
        self._pruned_before = cutoff
        return deleted

    def compact(self) -> None:
        """`vital_sketches` back to one row per (bucket, url, metric, bin), nothing deleted: for a
        run that ends without the worker's prune timer (the embedded runner)."""
        with self._lock:
            self._con.execute("BEGIN")
            try:
                self._compact_sketches()
                self._con.execute("COMMIT")
            except BaseException:
                self._con.execute("ROLLBACK")
                raise

    def _compact_sketches(self) -> None:
        """One row per (bucket, url, metric, bin) again (applies append rows; see _insert_sketches)."""
        self._con.execute("CREATE TEMP TABLE compacted AS SELECT bucket, url, metric, bin, sum(count)::BIGINT AS count "
                          "FROM vital_sketches GROUP BY ALL")
        self._con.execute("DELETE FROM vital_sketches")
        self._con.execute("INSERT INTO vital_sketches SELECT * FROM compacted ORDER BY bucket, url, metric, bin")
        self._con.execute("DROP TABLE compacted")

    # -- reading ------------------------------------------------------------------------
    def url_stats(self, urls: Optional[Sequence[str]], now_ms: int) -> dict[str, UrlStats]:
        """Rolling-window stats (window ending at now_ms) of these URLs, or all when None: the
        baselines comparisons read, from memory (the same figures as the `url_stats_at` macro).

        Include `*` in urls for the site-wide figures. URLs without data are absent. The
        UrlStats returned are shared with later reads: read them, never change them.
        """
        if urls is not None and not urls:
            return {}
        with self._lock:
            return self.baselines.read(urls, now_ms)

    def _load_totals(self, urls: Optional[Sequence[str]], first_bucket: int, last_bucket: int) -> dict[str, Totals]:
        """Each URL's hourly rows summed over [first_bucket, last_bucket] (called under the lock,
        by `baselines`): counters from `url_hourly`, bin counts from `vital_sketches`."""
        where = "bucket BETWEEN epoch_ms(?) AND epoch_ms(?)"
        params: list[Any] = [first_bucket, last_bucket]
        if urls is not None:
            where += " AND url IN (SELECT unnest(?::VARCHAR[]))"
            params.append(list(urls))
        sums = ", ".join(f"sum({name})::BIGINT" for name in COUNTERS)
        totals: dict[str, Totals] = {}
        for url, *counters in self._con.execute(
                f"SELECT url, {sums} FROM url_hourly WHERE {where} GROUP BY url", params).fetchall():
            totals[url] = (counters, {})
        for url, metric, bins, counts in self._con.execute(
                f"SELECT url, metric, list(bin), list(n) FROM (SELECT url, metric, bin, sum(count)::BIGINT AS n "
                f"FROM vital_sketches WHERE {where} GROUP BY url, metric, bin) GROUP BY url, metric",
                params).fetchall():
            if url in totals:
                totals[url][1][metric] = dict(zip(bins, counts))
        return totals

    def query(self, sql: str, params: Optional[Sequence[Any]] = None) -> tuple[list[str], list[tuple]]:
        """Runs one SQL statement; returns (column names, rows)."""
        with self._lock:
            cursor = self._con.execute(sql, params or [])
            columns = [d[0] for d in cursor.description] if cursor.description else []
            rows = cursor.fetchall() if cursor.description else []
        return columns, rows

    def query_select(self, sql: str) -> tuple[list[str], list[tuple]]:
        """Runs one SELECT statement and nothing else (on a confined store, DuckDB itself also
        refuses any file, extension or setting access the SELECT might attempt)."""
        with self._lock:
            statements = self._con.extract_statements(sql)
        if len(statements) != 1:
            raise ReadOnlyQueryError(f"one SELECT statement is run, not {len(statements)}")
        kind = statements[0].type
        if kind != duckdb.StatementType.SELECT:
            raise ReadOnlyQueryError(f"only SELECT statements are run, not {kind.name}")
        return self.query(sql)

    def export_parquet(self, out_dir: Union[str, Path], tables: Optional[Sequence[str]] = None) -> list[Path]:
        """Writes each table or view to `<out_dir>/<name>.parquet`; returns the paths."""
        names = list(tables or DEFAULT_EXPORT)
        unknown = [n for n in names if n not in EXPORTABLE]
        if unknown:
            raise ValueError(f"cannot export {unknown}: choose from {', '.join(EXPORTABLE)}")
        out = Path(out_dir).resolve()  # a confined store allows writes under resolved directories
        out.mkdir(parents=True, exist_ok=True)
        paths = []
        for name in names:
            target = out / f"{name}.parquet"
            quoted = str(target).replace("'", "''")
            with self._lock:
                self._con.execute(f"COPY (SELECT * FROM {name}) TO '{quoted}' (FORMAT parquet)")
            paths.append(target)
        return paths

    def close(self) -> None:
        with self._lock:
            if self._con is not None:
                if not self.read_only:
                    self._con.execute("CHECKPOINT")
                self._con.close()
                self._con = None  # type: ignore[assignment]

    def __enter__(self) -> "AggregateStore":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
