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
from typing import Iterable, Optional

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
    return 2.0 * math.exp(index * _LOG_GAMMA) / (GAMMA + 1.0)


def bins_of(values: Iterable[float]) -> dict[int, int]:
    """Counts per bin of these samples."""
    counts: dict[int, int] = {}
    for value in values:
        index = sketch_bin(value)
        counts[index] = counts.get(index, 0) + 1
    return counts


def rank_of(q: float, n: int) -> int:
    """The 1-based nearest rank of quantile q among n samples (as `arithmetic.quantile`)."""
    return max(math.ceil(q * n), 1)


class VitalSketch:
    """Counts per bin of one metric's samples (for one URL and hour, or a whole window)."""

    __slots__ = ("counts", "n", "_sorted")

    def __init__(self, counts: Optional[dict[int, int]] = None) -> None:
        self.counts: dict[int, int] = dict(counts) if counts else {}
        self.n = sum(self.counts.values())
        self._sorted: Optional[list[int]] = None  # bins in order, kept until the bins change

    @classmethod
    def of(cls, values: Iterable[float]) -> "VitalSketch":
        return cls(bins_of(values))

    def add_bins(self, counts: dict[int, int], sign: int = 1) -> None:
        """Adds (sign 1) or takes away (sign -1) another sketch's counts."""
        mine = self.counts
        for index, count in counts.items():
            total = mine.get(index, 0) + sign * count
            if total:
                if index not in mine:
                    self._sorted = None
                mine[index] = total
            else:
                mine.pop(index, None)
                self._sorted = None
            self.n += sign * count

    def add_values(self, values: Iterable[float]) -> None:
        self.add_bins(bins_of(values))

    def quantile_bin(self, q: float) -> Optional[int]:
        """The bin holding the sample of nearest rank ceil(q * n); None when empty."""
        return self.quantile_bins((q,))[0] if self.n else None

    def quantile_bins(self, qs: Iterable[float]) -> list[int]:
        """The bins of several quantiles in one walk (qs ascending or not)."""
        if self._sorted is None:
            self._sorted = sorted(self.counts)
        wanted = sorted((rank_of(q, self.n), i) for i, q in enumerate(qs))
        found = [0] * len(wanted)
        seen, w, counts = 0, 0, self.counts
        for index in self._sorted:
            seen += counts[index]
            while w < len(wanted) and seen >= wanted[w][0]:
                found[wanted[w][1]] = index
                w += 1
            if w == len(wanted):
                break
        return found

    def quantile(self, q: float) -> Optional[float]:
        index = self.quantile_bin(q)
        return None if index is None else bin_value(index)

    def copy(self) -> "VitalSketch":
        return VitalSketch(self.counts)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, VitalSketch) and self.counts == other.counts

    def __repr__(self) -> str:
        return f"VitalSketch(n={self.n}, bins={len(self.counts)})"
