"""An in-memory BM25 index over chunks (Okapi BM25, k1 = 1.5, b = 0.75), as an inverted index of
compact arrays scored with numpy.

Each chunk gets a row number. Each term (text_terms.py) has a posting list: the rows holding it and
how often, two growable `array.array`s, so adding a chunk appends to the lists of its terms and
costs nothing in proportion to the bank. A query turns the posting lists of its terms into numpy
arrays, computes every posting's BM25 contribution in one vectorised expression per term and sums
them per row with `np.bincount`: the work is the length of the query terms' posting lists, in C,
instead of a Python loop over every matching chunk.

Removing a chunk only marks its row dead (its postings stay until the next compaction, and the
per-term document frequencies drop at once, so scores never count it). When dead rows outnumber
live ones the index rebuilds itself from its live chunks, which keeps the lists short.

Scores are the same floating-point numbers as the pure-Python reference (bm25_python.py): the
formula is evaluated in the same order, in float64, and each row's contributions are summed in
query-term order. Ties are broken by chunk key, as there.
"""

from __future__ import annotations

import math
from array import array
from collections import Counter
from collections.abc import Iterable

import numpy as np
from numpy.typing import NDArray

from .text_terms import terms
from .types import Filters, ScoredChunk, StoredChunk, matches

Key = tuple[str, int]
# Compaction is not worth it for a few dead rows: only past this many, and past the live count.
MIN_DEAD_TO_COMPACT = 1024


class BM25Index:
    """`generation` is the bank's write count this index reflects (see keyword_indexes.py)."""

    def __init__(self, k1: float = 1.5, b: float = 0.75, generation: int = 0) -> None:
        self.k1, self.b = k1, b
        self.generation = generation
        self._clear()

    def _clear(self) -> None:
        self.rows: dict[Key, int] = {}
        self.chunks: list[StoredChunk | None] = []  # by row; None once removed
        self.lengths: NDArray[np.float64] = np.zeros(1024)
        self.alive: NDArray[np.bool_] = np.zeros(1024, dtype=bool)
        self.term_ids: dict[str, int] = {}
        self.posting_rows: list[array[int]] = []
        self.posting_counts: list[array[int]] = []
        self.document_frequency: list[int] = []  # live chunks holding each term
        self.by_document: dict[str, list[Key]] = {}
        self.total_length = 0
        self.dead = 0

    def __len__(self) -> int:
        return len(self.rows)

    # --- writes ---------------------------------------------------------------------------------

    def add(self, chunks: Iterable[StoredChunk]) -> None:
        for chunk in chunks:
            if chunk.key in self.rows:
                self._remove_key(chunk.key)
            self._append(chunk)
        self._compact_if_sparse()

    def replace_documents(self, document_ids: Iterable[str], chunks: Iterable[StoredChunk]) -> None:
        """What a write did to the bank: every chunk of `document_ids` gone, `chunks` in."""
        for document_id in document_ids:
            for key in self.by_document.pop(document_id, []):
                self._remove_key(key)
        self.add(chunks)

    def remove_documents(self, document_ids: Iterable[str]) -> None:
        self.replace_documents(document_ids, [])

    def _append(self, chunk: StoredChunk) -> None:
        row = len(self.chunks)
        if row == len(self.lengths):
            self.lengths = np.concatenate([self.lengths, np.zeros(row)])
            self.alive = np.concatenate([self.alive, np.zeros(row, dtype=bool)])
        frequencies = Counter(terms(chunk.content))
        length = sum(frequencies.values())
        self.chunks.append(chunk)
        self.rows[chunk.key] = row
        self.lengths[row] = length
        self.alive[row] = True
        self.total_length += length
        self.by_document.setdefault(chunk.document_id, []).append(chunk.key)
        for term, count in frequencies.items():
            term_id = self.term_ids.get(term)
            if term_id is None:
                term_id = self.term_ids[term] = len(self.posting_rows)
                self.posting_rows.append(array("i"))
                self.posting_counts.append(array("i"))
                self.document_frequency.append(0)
            self.posting_rows[term_id].append(row)
            self.posting_counts[term_id].append(count)
            self.document_frequency[term_id] += 1

    def _remove_key(self, key: Key) -> None:
        row = self.rows.pop(key, None)
        if row is None:
            return
        chunk = self.chunks[row]
        assert chunk is not None
        # The chunk's terms are not kept per row (that would double the memory); they are derived
        # again from its text, which gives the same terms.
        for term in set(terms(chunk.content)):
            self.document_frequency[self.term_ids[term]] -= 1
        self.total_length -= int(self.lengths[row])
        self.chunks[row] = None
        self.alive[row] = False
        self.dead += 1

    def _compact_if_sparse(self) -> None:
        if self.dead > MIN_DEAD_TO_COMPACT and self.dead > len(self.rows):
            live = [chunk for chunk in self.chunks if chunk is not None]
            self._clear()
            for chunk in live:
                self._append(chunk)

    # --- search ---------------------------------------------------------------------------------

    def search(self, query: str, k: int, filters: Filters) -> list[ScoredChunk]:
        """Chunks sharing at least one term with `query`, by descending BM25 score."""
        scores = self.scores(query)
        if scores is None:
            return []
        hits = np.flatnonzero((scores > 0) & self.alive[: len(scores)])
        return self._top(scores, hits, k, filters)

    def ceiling(self, query: str) -> float:
        """The most a chunk can score for `query`, nearly: the sum over the query's terms that the
        bank holds of their weight at a saturated term frequency, idf * (k1 + 1)."""
        count = len(self.rows)
        total = 0.0
        for term, query_frequency in Counter(terms(query)).items():
            term_id = self.term_ids.get(term)
            if term_id is not None and self.document_frequency[term_id] > 0:
                holders = self.document_frequency[term_id]
                total += query_frequency * math.log(1 + (count - holders + 0.5) / (holders + 0.5)) * (self.k1 + 1)
        return total

    def scores(self, query: str) -> NDArray[np.float64] | None:
        """Every row's BM25 score for `query` (0 where it shares no term), or None if no row can match."""
        count = len(self.rows)
        if count == 0:
            return None
        average = max(self.total_length / count, 1e-9)
        k1, b = self.k1, self.b
        all_rows: list[NDArray[np.int32]] = []
        contributions: list[NDArray[np.float64]] = []
        for term, query_frequency in Counter(terms(query)).items():
            term_id = self.term_ids.get(term)
            if term_id is None or self.document_frequency[term_id] == 0:
                continue
            holders = self.document_frequency[term_id]
            idf = math.log(1 + (count - holders + 0.5) / (holders + 0.5))
            rows = np.frombuffer(self.posting_rows[term_id], dtype=np.int32).copy()
            tf = np.frombuffer(self.posting_counts[term_id], dtype=np.int32).astype(np.float64)
            norm = tf + k1 * (1 - b + b * self.lengths[rows] / average)
            contributions.append(query_frequency * idf * tf * (k1 + 1) / norm)
            all_rows.append(rows)
        if not all_rows:
            return None
        weights = np.concatenate(contributions)
        scores = np.bincount(np.concatenate(all_rows), weights=weights, minlength=len(self.chunks))
        return scores.astype(np.float64, copy=False)

    def _top(self, scores: NDArray[np.float64], hits: NDArray[np.intp], k: int, filters: Filters) -> list[ScoredChunk]:
        """The best k of `hits` that pass `filters`. Only a few more than k are sorted in Python:
        when filters reject too many of them, the next pass looks at four times as many."""
        wanted = k
        while True:
            chosen = hits
            if wanted < hits.size:
                hit_scores = scores[hits]
                cutoff = np.partition(hit_scores, hits.size - wanted)[hits.size - wanted]
                chosen = hits[hit_scores >= cutoff]  # every tie at the cutoff, so the key decides
            ranked = sorted(chosen.tolist(), key=lambda row: (-scores[row], self._key(row)))
            results: list[ScoredChunk] = []
            for row in ranked:
                chunk = self.chunks[row]
                if chunk is not None and matches(chunk.metadata, filters):
                    results.append(ScoredChunk(chunk, float(scores[row])))
                    if len(results) == k:
                        return results
            if chosen.size == hits.size:
                return results
            wanted *= 4

    def _key(self, row: int) -> Key:
        chunk = self.chunks[row]
        return chunk.key if chunk is not None else ("", -1)
