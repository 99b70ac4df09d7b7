"""Web-vital quantiles from a fixed log-bucket histogram (DDSketch's mapping): bounded relative
error, mergeable and subtractable, whatever the number of samples.

A positive value v falls in bin i = ceil(log(v) / log(GAMMA)), i.e. GAMMA^(i-1) < v <= GAMMA^i,
with GAMMA = (1 + a) / (1 - a) for the relative accuracy a (RELATIVE_ACCURACY, 1%). A bin is
read back as 2 * GAMMA^i / (GAMMA + 1), within a of every value in it. Zero has its own bin
(ZERO_BIN, read back as exactly 0: a CLS of 0 is common). Values are clamped to
[MIN_VALUE, MAX_VALUE] first (below: the lowest bin; above: the top bin), which keeps the bins
and their values finite.

The quantile is the same NEAREST-RANK quantile as before (`arithmetic.quantile`, DuckDB's
`quantile_disc`): the bin holding the sample of rank ceil(q * n). So for every q,
|sketch quantile - exact nearest-rank quantile| <= a * exact (for samples within the clamp range),
and the result is exact when that sample is 0. A sketch holds only integer counts: sketches
merged or subtracted in any order give the same bins, so every worker reads the same figures.
"""
from __future__ import annotations

import math
from bisect import bisect_left
from itertools import accumulate
from typing import Iterable, Optional, Sequence

RELATIVE_ACCURACY = 0.01
GAMMA = (1 + RELATIVE_ACCURACY) / (1 - RELATIVE_ACCURACY)
_LOG_GAMMA = math.log(GAMMA)
# Clamp range: web vitals are ms (LCP, INP, FCP, TTFB) or a small unitless score (CLS); a value
# outside it (a broken reporter's 1e300) is counted at the edge instead of making an extreme bin.
MIN_VALUE = 1e-9
MAX_VALUE = 1e12
ZERO_BIN = -1_000_000  # below every positive value's bin (about -1,050 to +1,400): sorts first
QUANTILES = (0.75, 0.5)  # what a baseline reads: p75, median


def sketch_bin(value: float) -> int:
    """The bin of one (non-negative) sample."""
    if value <= 0:
        return ZERO_BIN
    clamped = MIN_VALUE if value < MIN_VALUE else MAX_VALUE if value > MAX_VALUE else value
    return math.ceil(math.log(clamped) / _LOG_GAMMA)


def bin_value(index: int) -> float:
    """What a bin reads back as: within RELATIVE_ACCURACY of every value in it (0 for ZERO_BIN).
    The SQL macro `sketch_value` (aggregates/store.py) computes the same."""
    if index == ZERO_BIN:
        return 0.0
    return 2.0 * GAMMA ** index / (GAMMA + 1.0)  # pow: DuckDB's gives the same doubles (exp does not)


def bins_of(values: Iterable[float]) -> dict[int, int]:
    """Counts per bin of these samples."""
    counts: dict[int, int] = {}
    log, ceil, get = math.log, math.ceil, counts.get
    for value in values:  # sketch_bin inlined for the common case (the write path's cost)
        index = ceil(log(value) / _LOG_GAMMA) if MIN_VALUE <= value <= MAX_VALUE else sketch_bin(value)
        counts[index] = get(index, 0) + 1
    return counts


def rank_of(q: float, n: int) -> int:
    """The 1-based nearest rank of quantile q among n samples (as `arithmetic.quantile`)."""
    return max(math.ceil(q * n), 1)


class VitalSketch:
    """Counts per bin of one metric's samples (for one URL and hour, or a whole window): zeros
    apart, then a dense list of counts from bin `offset` on. The first quantile is one running
    sum (itertools.accumulate) and a bisection; after that each quantile's bin is remembered with
    the count below it (`marks`, kept current by `add_bins`), and found again by stepping from
    there: a few steps when a few samples came, whatever the number of bins."""

    __slots__ = ("zeros", "offset", "dense", "n", "marks")

    def __init__(self, counts: Optional[dict[int, int]] = None) -> None:
        self.zeros = 0
        self.offset = 0
        self.dense: list[int] = []
        self.n = 0
        self.marks: dict[float, list[int]] = {}  # q -> [its last bin, count of the bins below it]
        if counts:
            self.add_bins(counts)

    @classmethod
    def of(cls, values: Iterable[float]) -> "VitalSketch":
        return cls(bins_of(values))

    def add_bins(self, counts: dict[int, int], sign: int = 1) -> None:
        """Adds (sign 1) or takes away (sign -1) another sketch's counts (as {bin: count})."""
        zeros = counts.get(ZERO_BIN)
        if zeros:
            self.zeros += sign * zeros
            self.n += sign * zeros
        positive = [index for index in counts if index != ZERO_BIN]
        if not positive:
            return
        low, high = min(positive), max(positive)
        dense = self.dense
        if not dense:
            self.offset = low
        if low < self.offset:
            dense[:0] = [0] * (self.offset - low)
            self.offset = low
        if high >= self.offset + len(dense):
            dense.extend([0] * (high - self.offset - len(dense) + 1))
        offset = self.offset
        for index in positive:
            count = sign * counts[index]
            dense[index - offset] += count
            self.n += count
        for mark in self.marks.values():
            mark[1] += sign * sum(counts[index] for index in positive if index < mark[0])

    def add_values(self, values: Iterable[float]) -> None:
        self.add_bins(bins_of(values))

    @property
    def counts(self) -> dict[int, int]:
        """{bin: count} of the bins holding samples."""
        out = {ZERO_BIN: self.zeros} if self.zeros else {}
        out.update((self.offset + i, c) for i, c in enumerate(self.dense) if c)
        return out

    def quantile_bins(self, qs: Sequence[float]) -> list[int]:
        """The bin holding the sample of nearest rank ceil(q * n), for each q (n > 0)."""
        if self.n <= 0:
            raise ValueError("an empty sketch has no quantile")
        running: Optional[list[int]] = None
        found = []
        for q in qs:
            rank = rank_of(q, self.n)
            if rank <= self.zeros:
                found.append(ZERO_BIN)
                continue
            target = rank - self.zeros  # its rank among the positive samples
            mark = self.marks.get(q)
            if mark is None:
                if running is None:
                    running = list(accumulate(self.dense))
                position = bisect_left(running, target)
                mark = self.marks[q] = [self.offset + position, running[position - 1] if position else 0]
            else:
                self._step(mark, target)
            found.append(mark[0])
        return found

    def _step(self, mark: list[int], target: int) -> None:
        """Moves a mark to the first bin whose running count reaches `target`."""
        index, below = mark
        dense, offset = self.dense, self.offset
        while below >= target:  # the target sample lies in an earlier bin
            index -= 1
            below -= dense[index - offset]
        while below + dense[index - offset] < target:  # ... or in a later one
            below += dense[index - offset]
            index += 1
        mark[0], mark[1] = index, below

    def quantile(self, q: float) -> Optional[float]:
        return bin_value(self.quantile_bins((q,))[0]) if self.n > 0 else None

    def __eq__(self, other: object) -> bool:
        return isinstance(other, VitalSketch) and self.counts == other.counts

    def __repr__(self) -> str:
        return f"VitalSketch(n={self.n}, zeros={self.zeros}, bins {self.offset}..{self.offset + len(self.dense) - 1})"
