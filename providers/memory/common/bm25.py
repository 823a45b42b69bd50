"""An in-memory BM25 index over chunks (Okapi BM25, k1 = 1.5, b = 0.75).

Terms are lower-cased Unicode word runs minus a short list of English stop words, with plural
and -ing/-ed endings stripped (a light stemmer: "purrs", "purring" and "purred" all match "purr"). Postings map
each term to the chunks holding it, so a query touches only the chunks that share a term with it.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

from .types import Filters, ScoredChunk, StoredChunk, matches

_WORD = re.compile(r"\w+", re.UNICODE)
STOP_WORDS = frozenset(
    "a an and are as at be but by for from has have he her his how i if in into is it its me my no not of on "
    "or our she so than that the their them then there these they this to was we were what when where which "
    "who whom why will with you your does do did can".split()
)


def stem(word: str) -> str:
    if len(word) <= 3:
        return word
    if word.endswith("ies") and len(word) > 4:
        return word[:-3] + "y"
    for suffix in ("ing", "ed"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            return word[: -len(suffix)]
    if word.endswith(("sses", "xes", "zes", "ches", "shes")):
        return word[:-2]
    if word.endswith("s") and not word.endswith(("ss", "us", "is")):
        return word[:-1]
    return word


def terms(text: str) -> list[str]:
    return [stem(word) for word in _WORD.findall(text.lower()) if word not in STOP_WORDS]


@dataclass
class _Entry:
    chunk: StoredChunk
    frequencies: Counter[str]
    length: int


class BM25Index:
    """`generation` is the bank's write count this index reflects (see keyword_indexes.py)."""

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
