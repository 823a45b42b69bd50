"""The first BM25 index of this project, in pure Python (dict postings, per-chunk Counters), kept as
the reference that the inverted index of bm25.py must agree with score for score (a test compares
them) and as the baseline benchmarks/bench_keyword_scale.py measures it against. Not used to serve.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

from .text_terms import terms
from .types import Filters, ScoredChunk, StoredChunk, matches


@dataclass
class _Entry:
    chunk: StoredChunk
    frequencies: Counter[str]
    length: int


class PythonBM25Index:
    """Okapi BM25 (k1 = 1.5, b = 0.75) over chunks, scoring by walking dict postings."""

    def __init__(self, k1: float = 1.5, b: float = 0.75, generation: int = 0) -> None:
        self.k1, self.b = k1, b
        self.generation = generation
        self.entries: dict[tuple[str, int], _Entry] = {}
        self.postings: dict[str, set[tuple[str, int]]] = {}
        self.by_document: dict[str, list[tuple[str, int]]] = {}
        self.total_length = 0

    def __len__(self) -> int:
        return len(self.entries)

    def add(self, chunks: Iterable[StoredChunk]) -> None:
        for chunk in chunks:
            if chunk.key in self.entries:
                self._remove_key(chunk.key)
            words = terms(chunk.content)
            entry = _Entry(chunk, Counter(words), len(words))
            self.entries[chunk.key] = entry
            self.total_length += entry.length
            self.by_document.setdefault(chunk.document_id, []).append(chunk.key)
            for term in entry.frequencies:
                self.postings.setdefault(term, set()).add(chunk.key)

    def replace_documents(self, document_ids: Iterable[str], chunks: Iterable[StoredChunk]) -> None:
        """What a write did to the bank: every chunk of `document_ids` gone, `chunks` in."""
        self.remove_documents(document_ids)
        self.add(chunks)

    def remove_documents(self, document_ids: Iterable[str]) -> None:
        for document_id in document_ids:
            for key in self.by_document.pop(document_id, []):
                self._remove_key(key)

    def _remove_key(self, key: tuple[str, int]) -> None:
        entry = self.entries.pop(key, None)
        if entry is None:
            return
        self.total_length -= entry.length
        for term in entry.frequencies:
            holders = self.postings.get(term)
            if holders is not None:
                holders.discard(key)
                if not holders:
                    del self.postings[term]

    def search(self, query: str, k: int, filters: Filters) -> list[ScoredChunk]:
        """Chunks sharing at least one term with `query`, by descending BM25 score."""
        if not self.entries:
            return []
        count = len(self.entries)
        average = max(self.total_length / count, 1e-9)
        scores: dict[tuple[str, int], float] = {}
        for term, query_frequency in Counter(terms(query)).items():
            holders = self.postings.get(term)
            if not holders:
                continue
            idf = math.log(1 + (count - len(holders) + 0.5) / (len(holders) + 0.5))
            for key in holders:
                entry = self.entries[key]
                tf = entry.frequencies[term]
                norm = tf + self.k1 * (1 - self.b + self.b * entry.length / average)
                scores[key] = scores.get(key, 0.0) + query_frequency * idf * tf * (self.k1 + 1) / norm
        ranked = sorted(scores.items(), key=lambda item: (-item[1], item[0]))
        results: list[ScoredChunk] = []
        for key, score in ranked:
            chunk = self.entries[key].chunk
            if matches(chunk.metadata, filters):
                results.append(ScoredChunk(chunk, score))
                if len(results) == k:
                    break
        return results
