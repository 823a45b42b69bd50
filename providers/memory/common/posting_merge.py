"""Merging a query's scored posting lists for bm25.py: the live rows holding any of them and the
sum of their values, without sorting and without a pass over every row of the index."""

from __future__ import annotations

import threading

import numpy as np
from numpy.typing import NDArray

# Lists holding at least 1/_DENSE_SHARE as many postings as the index has rows merge by a count over
# every row rather than by slots (measured: the crossover lies near a quarter).
_DENSE_SHARE = 4


class PostingMerger:
    """Keeps the scratch array the merge works in, one per index."""

    def __init__(self) -> None:
        self._scratch: NDArray[np.intp] | None = None  # see _take_slots
        self._scratch_lock = threading.Lock()

    def merge(
        self, alive: NDArray[np.bool_], size: int, scored: list[tuple[NDArray[np.intp], NDArray[np.float64]]]
    ) -> tuple[NDArray[np.intp], NDArray[np.float64]]:
        """The rows, among `size`, that are `alive` and in any of these lists (rows unique within
        each list), and the sum of their values.

        Each row gets a slot, in a scratch array by row (-1: no slot), the first time a list
        names it: the work is the postings', with no sorting and no pass over every row."""
        postings = sum(rows.size for rows, _ in scored)
        if len(scored) == 1:
            rows, partial = scored[0]
        elif postings * _DENSE_SHARE >= size:
            # Lists about as long as the index: one count per row of the whole index is cheaper.
            weights = np.concatenate([parts for _, parts in scored])
            sums = np.bincount(np.concatenate([rows for rows, _ in scored]), weights=weights, minlength=size)
            rows = np.flatnonzero(sums)
            partial = sums[rows].astype(np.float64, copy=False)
        else:
            slots = self._take_slots(size)
            fresh_rows: list[NDArray[np.intp]] = []
            try:
                slot_lists: list[NDArray[np.intp]] = []
                count = 0
                for term_rows, _ in scored:
                    term_slots = slots[term_rows]
                    new = term_slots < 0
                    fresh = term_rows[new]
                    term_slots[new] = np.arange(count, count + fresh.size)
                    slots[fresh] = term_slots[new]
                    count += fresh.size
                    fresh_rows.append(fresh)
                    slot_lists.append(term_slots)
                rows = np.concatenate(fresh_rows)
                weights = np.concatenate([parts for _, parts in scored])
                sums = np.bincount(np.concatenate(slot_lists), weights=weights, minlength=count)
                partial = sums.astype(np.float64, copy=False)
            finally:
                for fresh in fresh_rows:
                    slots[fresh] = -1
                self._release_slots(slots)
        live = alive[rows]
        return rows[live], partial[live]

    def _take_slots(self, size: int) -> NDArray[np.intp]:
        """A scratch array of -1 per row. The index keeps one (searches run on one thread, but a
        concurrent one gets its own) and callers hand it back with every entry -1 again."""
        with self._scratch_lock:
            slots, self._scratch = self._scratch, None
        if slots is None or slots.size < size:
            slots = np.full(max(size, 1024), -1, dtype=np.intp)
        return slots

    def _release_slots(self, slots: NDArray[np.intp]) -> None:
        with self._scratch_lock:
            self._scratch = slots
