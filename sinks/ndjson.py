"""Summaries as NDJSON lines in a file (the embedded runner's sink)."""
from __future__ import annotations

from pathlib import Path
from typing import IO, Any, Iterable, Optional

import orjson

from replaylens.schemas.summaries import Summary


class NdjsonSummaryWriter:
    """Appends summaries, one JSON object per line; each batch is flushed before returning."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self._file: Optional[IO[bytes]] = None

    def write(self, summaries: Iterable[Summary]) -> int:
        return self.write_dumped([s.model_dump(mode="json") for s in summaries])

    def write_dumped(self, summaries: Iterable[dict[str, Any]]) -> int:
        """`write` of summaries already dumped (`model_dump(mode="json")`), for a caller that
        needs the dicts too."""
        dumps, option = orjson.dumps, orjson.OPT_APPEND_NEWLINE
        lines = [dumps(s, option=option) for s in summaries]
        if not lines:
            return 0
        if self._file is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = open(self.path, "ab")
        self._file.write(b"".join(lines))
        self._file.flush()
        return len(lines)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def __enter__(self) -> "NdjsonSummaryWriter":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def read_summaries(path: Path | str) -> list[dict]:
    """All summaries in an NDJSON file (tests, CLI)."""
    with open(path, "rb") as f:
        return [orjson.loads(line) for line in f if line.strip()]
