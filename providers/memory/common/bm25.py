"""An in-memory BM25 index over chunks (Okapi BM25, k1 = 1.5, b = 0.75), as an inverted index of
compact arrays scored with numpy.

Each chunk gets a row number. Each term (text_terms.py) has a posting list: the rows holding it and
how often, two growable `array.array`s, so adding a chunk appends to the lists of its terms and
costs nothing in proportion to the bank. Rows are appended in order, so every list is sorted.

A query without filters does not score every posting of its terms (BM25Index._best): the rarest
terms' best rows set a floor, the commonest terms, whose whole weight stays under it, are looked up
one at a time only for the rows that can still reach the top k, and the other lists are read as
cached per-posting factors (float32, one multiply a posting) and merged by row (posting_merge.py).
Only the rows left are scored exactly. Every step works on sorted rows, so lookups read a list
front to back rather than jumping around an array as long as the index. A query with filters scores every posting in one vectorised expression per term, summed per row
with `np.bincount`, and walks the rows best first until k pass.

Removing a chunk only marks its row dead (its postings stay until the next compaction, and the
per-term document frequencies drop at once, so scores never count it). When dead rows outnumber
live ones the index rebuilds itself from its live chunks, which keeps the lists short.

Scores are the same floating-point numbers as the pure-Python reference (bm25_python.py): the
formula is evaluated in the same order, in float64, and each row's contributions are summed in
query-term order; the approximate factors only decide which rows are scored. Ties are broken by
chunk key, as there.
"""

from __future__ import annotations

import math
from array import array
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from .posting_merge import Rows, merge_postings
from .text_terms import terms
from .types import Filters, ScoredChunk, StoredChunk, matches

Key = tuple[str, int]
# Compaction is not worth it for a few dead rows: only past this many, and past the live count.
MIN_DEAD_TO_COMPACT = 1024
# Pruning compares sums of the same contributions added in different orders: a relative margin
# this wide is far above their rounding differences (about 1e-15) and far below any real gap.
_MARGIN = 1e-9
# Partial scores come from float32 factors: each within this relative error of the exact value.
_APPROXIMATION = 1e-5
# Lists shorter than this are scored directly; longer ones keep their factors (4 bytes a posting).
_CACHE_MIN_POSTINGS = 2048
# A cached list's factors are recomputed once the averages they were computed at spread this much.
_DRIFT = 1.01


@dataclass(frozen=True)
class _Factors:
    values: NDArray[np.float32]
    low: float  # the lowest and highest average length the values were computed at
    high: float


@dataclass(frozen=True)
class _QueryTerm:
    term_id: int
    weight: float  # query frequency * idf, the reference's first product
    postings: int  # length of its posting list, dead rows included: the work of scoring it


def _kth_largest(values: NDArray[np.float64], k: int) -> float:
    return float(np.partition(values, values.size - k)[values.size - k])


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
        self._factor_cache: dict[int, _Factors] = {}  # term id -> its postings' factors (_factors)

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
        return self._search(self._query_terms(query), k, filters)

    def search_with_ceiling(self, query: str, k: int, filters: Filters) -> tuple[list[ScoredChunk], float]:
        """`search` and `ceiling` together, for hybrid search: the query is split into terms once."""
        query_terms = self._query_terms(query)
        return self._search(query_terms, k, filters), self._ceiling(query_terms)

    def _search(self, query_terms: list[_QueryTerm], k: int, filters: Filters) -> list[ScoredChunk]:
        if not query_terms:
            return []
        if filters:
            # Which rows pass is known only row by row (matches() on each chunk's metadata), so
            # every matching row is scored and _top walks them best first.
            scores = self._dense_scores(query_terms)
            hits = np.flatnonzero((scores > 0) & self.alive[: len(scores)])
            return self._top(scores, hits, k, filters)
        return self._best(query_terms, k)

    def ceiling(self, query: str) -> float:
        """The most a chunk can score for `query`, nearly: the sum over the query's terms that the
        bank holds of their weight at a saturated term frequency, idf * (k1 + 1)."""
        return self._ceiling(self._query_terms(query))

    def _ceiling(self, query_terms: list[_QueryTerm]) -> float:
        return sum(term.weight * (self.k1 + 1) for term in query_terms)

    def scores(self, query: str) -> NDArray[np.float64] | None:
        """Every row's BM25 score for `query` (0 where it shares no term), or None if no row can match."""
        query_terms = self._query_terms(query)
        return self._dense_scores(query_terms) if query_terms else None

    def _query_terms(self, query: str) -> list[_QueryTerm]:
        """The query's terms that some live chunk holds, in the order the query first names them
        (the order in which every score sums its terms' contributions, as the reference does)."""
        count = len(self.rows)
        found: list[_QueryTerm] = []
        for term, query_frequency in Counter(terms(query)).items():
            term_id = self.term_ids.get(term)
            if term_id is None or self.document_frequency[term_id] == 0:
                continue
            holders = self.document_frequency[term_id]
            idf = math.log(1 + (count - holders + 0.5) / (holders + 0.5))
            found.append(_QueryTerm(term_id, query_frequency * idf, len(self.posting_rows[term_id])))
        return found

    def _postings(self, term: _QueryTerm) -> tuple[NDArray[np.int32], NDArray[np.int32]]:
        """The term's posting rows (ascending: rows are appended in order) and counts, as views of
        the growable arrays. A view stops those arrays from growing, so callers drop them before
        returning; search never writes."""
        return (
            np.frombuffer(self.posting_rows[term.term_id], dtype=np.int32),
            np.frombuffer(self.posting_counts[term.term_id], dtype=np.int32),
        )

    def _contributions(
        self, weight: float | NDArray[np.float64], counts: NDArray[np.int32], rows: NDArray[np.int32]
    ) -> NDArray[np.float64]:
        """The term's share of these rows' scores: the reference's expression, operation for
        operation, so every float is the same."""
        k1, b = self.k1, self.b
        average = max(self.total_length / len(self.rows), 1e-9)
        tf = counts.astype(np.float64)
        norm = tf + k1 * (1 - b + b * self.lengths[rows] / average)
        contribution: NDArray[np.float64] = weight * tf * (k1 + 1) / norm
        return contribution

    def _dense_scores(self, query_terms: list[_QueryTerm]) -> NDArray[np.float64]:
        all_rows: list[NDArray[np.int32]] = []
        contributions: list[NDArray[np.float64]] = []
        for term in query_terms:
            rows, counts = self._postings(term)
            contributions.append(self._contributions(term.weight, counts, rows))
            all_rows.append(rows)
        # bincount adds each row's weights in input order: query-term order, as the reference.
        scores = np.bincount(
            np.concatenate(all_rows), weights=np.concatenate(contributions), minlength=len(self.chunks)
        )
        return scores.astype(np.float64, copy=False)

    def _best(self, query_terms: list[_QueryTerm], k: int) -> list[ScoredChunk]:
        """The best k rows without scoring every posting of the query's terms (max-score pruning).

        A term adds at most weight * (k1 + 1) to any chunk's score. The rarest terms are scored first
        (the rarest alone, or with the next rarest until they hold k postings): their k-th best
        row gives a floor under the k-th best score. The commonest terms (longest
        lists, smallest idf) whose bounds add up to less than that floor are left out: a row
        holding none of the other terms cannot reach the top k. The other terms are scored over
        their whole lists. The k rows with the best partial scores are then scored in full, and
        the least of their scores is a higher floor: only rows whose partial score plus all that
        the left-out terms could add reaches it stay in the running, and each left-out term
        narrows them further (_narrow). The scores of the rows left are summed again in
        query-term order, each contribution evaluated exactly as the reference does (the
        left-out terms looked up in their sorted lists), so scores and ties are the same floats as
        scoring every row.

        Partial scores are approximate (cached float32 factors, see _factors); every bound widens
        by their worst error, so pruning never drops a row of the true top k.
        """
        pending = sorted(query_terms, key=lambda term: term.postings)
        # The rarest terms first, as many as hold k postings between them: a term rarer than k
        # alone gives no floor, and then every term, the commonest too, would be scored.
        head, held = 1, pending[0].postings
        while head < len(pending) and held < k:
            held += pending[head].postings
            head += 1
        scored = [self._approximate(term) for term in pending[:head]]
        slack = max(bound for _, _, bound in scored)  # partial scores are within this factor of exact
        alive = self.alive if self.dead else None  # None: every row is live
        rows, partial = merge_postings([(rows, parts) for rows, parts, _ in scored], alive)
        # A partial score over some of the terms is at most the full score: k rows at or above the
        # k-th best partial score bound the k-th best score from below.
        kth = _kth_largest(partial, k) if partial.size >= k else 0.0
        floor = kth / slack
        cut, left_out = len(pending), 0.0
        while cut > head and (left_out + pending[cut - 1].weight) * (self.k1 + 1) * (1 + _MARGIN) < floor:
            left_out += pending[cut - 1].weight
            cut -= 1
        rest = left_out * (self.k1 + 1) * (1 + _MARGIN)
        scored = [self._approximate(term) for term in pending[head:cut]]
        if scored:
            slack = max(slack, *(bound for _, _, bound in scored))
            rows, partial = merge_postings([(rows, partial), *((rows, parts) for rows, parts, _ in scored)], alive)
            kth = _kth_largest(partial, k) if partial.size >= k else 0.0
        del scored
        if rows.size > k:
            if rest == 0:  # every term scored: the k-th best partial score bounds the k-th score
                floor = kth / slack
            else:
                floor = self._floor(query_terms, rows, partial, kth, k)
            keep = partial * slack + rest >= floor
            rows, partial = rows[keep], partial[keep]
            if rows.size > k and cut < len(pending):
                rows = self._narrow(rows, partial, pending[cut:], slack, floor, k)
        final = self._exact_scores(query_terms, rows)
        return self._ranked(rows, final, k)

    def _narrow(
        self,
        rows: Rows,
        partial: NDArray[np.float64],
        left_out: list[_QueryTerm],
        slack: float,
        floor: float,
        k: int,
    ) -> Rows:
        """The rows still in the running once the left-out terms are added to their partial
        scores one at a time, rarest first (the largest bound first), each addition tightening what
        the terms still left could add. The rows are sorted, so each lookup reads the term's list
        front to back.

        The common case this serves: the rarest term's few thousand rows, of which the exact
        scores would look each up in lists of most of the index; after the first left-out term
        only rows near the top remain."""
        remaining = sum(term.weight for term in left_out)
        for term in left_out:
            term_rows, factors, drift = self._factors(term)
            slack = max(slack, drift * (1 + _APPROXIMATION))
            found = np.minimum(np.searchsorted(term_rows, rows), term_rows.size - 1)
            holds = term_rows[found] == rows
            partial[holds] += np.multiply(factors[found[holds]], term.weight, dtype=np.float64)
            del term_rows, factors
            remaining -= term.weight
            rest = max(remaining, 0.0) * (self.k1 + 1) * (1 + _MARGIN)
            floor = max(floor, _kth_largest(partial, k) / slack)
            keep = partial * slack + rest >= floor
            rows, partial = rows[keep], partial[keep]
            if rows.size <= k:
                break
        return rows

    def _approximate(self, term: _QueryTerm) -> tuple[Rows, NDArray[np.float64], float]:
        """The term's posting rows, their approximate contributions, and the approximation's
        bound (a factor >= 1 either way)."""
        rows, factors, drift = self._factors(term)
        return rows, np.multiply(factors, term.weight, dtype=np.float64), drift * (1 + _APPROXIMATION)

    def _floor(
        self, query_terms: list[_QueryTerm], rows: Rows, partial: NDArray[np.float64], kth: float, k: int
    ) -> float:
        """At most the k-th best score: the least exact score of the k rows with the best partial
        scores (`kth` is the k-th best partial score), less a rounding margin."""
        # Not np.argpartition: it slows down a hundredfold on the long runs of equal scores that
        # equal-length chunks give. The k-th value is cheap to find, and ties at it are all alike.
        above = np.flatnonzero(partial > kth)
        level = np.flatnonzero(partial == kth)[: k - above.size]
        leaders = np.sort(rows[np.concatenate([above, level])])
        return float(self._exact_scores(query_terms, leaders).min()) * (1 - _MARGIN)

    def _factors(self, term: _QueryTerm) -> tuple[NDArray[np.int32], NDArray[np.float32], float]:
        """The term's posting rows, each posting's tf * (k1 + 1) / norm in float32, and how far
        those factors may be from the ones at today's average length (a factor >= 1).

        The factors of a long list are cached: a query reads them instead of evaluating BM25 over
        the list. The norm depends on the average chunk length, which every write moves, so each
        cached entry remembers the lowest and highest average its factors were computed at; a
        factor at average a' is within max(a'/a, a/a') of the one at a (only the length term of
        the norm scales, by a/a'). Postings appended since are computed and added at today's
        average; once the spread passes _DRIFT the entry is computed afresh."""
        rows, counts = self._postings(term)
        average = max(self.total_length / len(self.rows), 1e-9)
        if term.postings < _CACHE_MIN_POSTINGS:
            return rows, self._factor_values(counts, rows, average), 1.0
        entry = self._factor_cache.get(term.term_id)
        if entry is None or max(entry.high, average) / min(entry.low, average) > _DRIFT:
            entry = _Factors(self._factor_values(counts, rows, average), average, average)
            self._factor_cache[term.term_id] = entry
        elif entry.values.size < rows.size:
            start = entry.values.size
            tail = self._factor_values(counts[start:], rows[start:], average)
            entry = _Factors(np.concatenate([entry.values, tail]), min(entry.low, average), max(entry.high, average))
            self._factor_cache[term.term_id] = entry
        return rows, entry.values, max(entry.high / average, average / entry.low)

    def _factor_values(self, counts: NDArray[np.int32], rows: NDArray[np.int32], average: float) -> NDArray[np.float32]:
        k1, b = self.k1, self.b
        tf = counts.astype(np.float32)
        norm = tf + np.float32(k1) * (
            np.float32(1 - b) + self.lengths[rows].astype(np.float32) * np.float32(b / average)
        )
        return (tf * np.float32(k1 + 1) / norm).astype(np.float32, copy=False)

    def _exact_scores(self, query_terms: list[_QueryTerm], rows: Rows) -> NDArray[np.float64]:
        """These rows' (sorted) scores, summed in query-term order from contributions computed as
        the reference computes them."""
        targets: list[NDArray[np.intp]] = []
        weights: list[NDArray[np.float64]] = []
        counts: list[NDArray[np.int32]] = []
        holders: list[NDArray[np.int32]] = []
        for term in query_terms:
            term_rows, term_counts = self._postings(term)
            # Both are sorted: the shorter is searched for in the longer, which is read front to back.
            if rows.size < term.postings:
                found = np.minimum(np.searchsorted(term_rows, rows), term_rows.size - 1)
                holds = term_rows[found] == rows
                where, slots_of = found[holds], np.flatnonzero(holds)
            else:
                found = np.minimum(np.searchsorted(rows, term_rows), rows.size - 1)
                where = np.flatnonzero(rows[found] == term_rows)
                slots_of = found[where]
            targets.append(slots_of)
            weights.append(np.full(where.size, term.weight))
            counts.append(term_counts[where])
            holders.append(term_rows[where])
            del term_rows, term_counts
        # All terms' contributions in one expression: the same operations on the same values, with
        # the weight an array element instead of a scalar, give the same floats. bincount then adds
        # each row's contributions in input order, which is query-term order, as the reference.
        contributions = self._contributions(np.concatenate(weights), np.concatenate(counts), np.concatenate(holders))
        scores = np.bincount(np.concatenate(targets), weights=contributions, minlength=rows.size)
        return scores.astype(np.float64, copy=False)

    def _ranked(self, rows: Rows, scores: NDArray[np.float64], k: int) -> list[ScoredChunk]:
        """The best k by descending score, ties by chunk key; only rows at or above the k-th best
        score are sorted in Python."""
        if rows.size > k:
            cutoff = np.partition(scores, rows.size - k)[rows.size - k]
            keep = scores >= cutoff
            rows, scores = rows[keep], scores[keep]
        chunks = self.chunks
        # One tuple per row, compared in C: (-score, document_id, chunk_index) is the order.
        ordered = sorted(
            (-score, chunk.document_id, chunk.chunk_index, chunk)
            for score, chunk in zip(scores.tolist(), [chunks[row] for row in rows.tolist()], strict=True)
            if chunk is not None  # only live rows are candidates
        )
        return [ScoredChunk(chunk, -negated) for negated, _, _, chunk in ordered[:k]]

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
