"""Merging a query's scored posting lists for bm25.py: the live rows holding any of them and the
sum of their values, sorted by row, in work that grows with the lists and not with the index.

Posting lists are sorted by row (rows are appended in order), so each list folds into the longest
one by a binary search per posting of the shorter list and one insertion of the rows it adds. Both
read memory front to back. A scratch array indexed by row, or a count over every row of the index,
did the same in random reads over megabytes at a million rows, several times slower there.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

Rows = NDArray[np.int32]
Values = NDArray[np.float64]


def merge_postings(scored: list[tuple[Rows, Values]], alive: NDArray[np.bool_] | None) -> tuple[Rows, Values]:
    """The rows in any of these lists (each sorted, its rows unique) that are `alive` (None: every
    row is), sorted, and the sum of each row's values. The lists' arrays are not written to."""
    by_length = sorted(scored, key=lambda pair: pair[0].size, reverse=True)
    rows, sums = by_length[0]
    if len(by_length) > 1:
        sums = sums.copy()  # added into below
    for other_rows, other_values in by_length[1:]:
        if not other_rows.size:
            continue
        slots = np.searchsorted(rows, other_rows)
        held = rows[np.minimum(slots, rows.size - 1)] == other_rows if rows.size else np.zeros(other_rows.size, bool)
        sums[slots[held]] += other_values[held]  # slots of distinct rows are distinct: no lost adds
        added = ~held
        rows = np.insert(rows, slots[added], other_rows[added])
        sums = np.insert(sums, slots[added], other_values[added])
    if alive is None:
        return rows, sums
    live = alive[rows]
    return rows[live], sums[live]
