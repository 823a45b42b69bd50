"""Does character n-gram matching help questions in other languages? A measured, rejected idea.

Many technical words are cognates that share letters across languages ("Passwort" / "password",
"Datenbanken" / "database", "passeport" / "passport"), which whole-word BM25 misses. This adds a
third signal to hybrid search: BM25 over accent-folded character 4-grams of each word (with word
boundaries, "_pass", "assw", ...), normalised like the word BM25 (the share of the query's n-gram
weight a chunk matched), and fuses

    vector_weight * cosine + word_weight * word BM25 share + ngram_weight * n-gram BM25 share

beside the shipped hybrid (0.6 cosine + 0.4 word BM25), for each embedding model installed, on
benchmarks/data/retrieval_hard.json. The weights were not tuned per question; a few splits are
printed so that no single lucky one is read as the result. It also prints how many index terms a
chunk would carry with n-grams added to text_terms.terms, which is what a BM25 index pays per chunk.

Result: with all-MiniLM-L6-v2 questions in other languages go from 0.57 to 0.60-0.70 depending on
the split (paraphrases drop to 0.97 at the larger n-gram weights), still below 0.8, while n-gram
terms would put about 5x the postings in every BM25 index; with the multilingual encoder
(inline::universal-sentence-encoder) they are at 1.00 without it, and the signal only takes
recall away. So it is not shipped.

    python -m benchmarks.bench_cognate_ngrams
"""

from __future__ import annotations

import asyncio
import math
import re
from collections import Counter, defaultdict

import numpy as np

from benchmarks.bench_retrieval_quality import CATEGORIES, MODELS, K, available, load_embedder, load_set
from llama_stack.apis.inference import EmbeddingsRequest
from llama_stack.providers.memory.common.bm25 import BM25Index
from llama_stack.providers.memory.common.text_terms import STOP_WORDS, fold, terms
from llama_stack.providers.memory.common.types import StoredChunk

N = 4
_LETTERS = re.compile(r"[^\W\d_]+", re.UNICODE)
# (cosine, word BM25, n-gram BM25); the first is what hybrid ships.
SPLITS: tuple[tuple[float, float, float], ...] = ((0.6, 0.4, 0.0), (0.6, 0.3, 0.1), (0.5, 0.3, 0.2), (0.5, 0.25, 0.25))
DEPTH = 50


def ngram_terms(text: str) -> list[str]:
    """Character n-grams of each folded word of N letters or more, with its boundaries marked."""
    found: list[str] = []
    for word in _LETTERS.findall(fold(text)):
        if len(word) >= N and word not in STOP_WORDS:
            marked = f"_{word}_"
            found += [marked[i : i + N] for i in range(len(marked) - N + 1)]
    return found


class NgramBM25:
    """Plain BM25 over ngram_terms, brute force: the set is a hundred documents."""

    def __init__(self, texts: list[str], k1: float = 1.5, b: float = 0.75) -> None:
        self.k1, self.b = k1, b
        self.frequencies = [Counter(ngram_terms(text)) for text in texts]
        self.lengths = np.array([sum(f.values()) for f in self.frequencies], dtype=np.float64)
        self.average = float(self.lengths.mean())
        document_frequency = Counter(term for f in self.frequencies for term in f)
        count = len(texts)
        self.idf = {t: math.log(1 + (count - n + 0.5) / (n + 0.5)) for t, n in document_frequency.items()}

    def shares(self, query: str) -> np.ndarray:
        """Each document's score over the most any could reach (every query n-gram once), in [0, 1]."""
        wanted = Counter(ngram_terms(query))
        ceiling = sum(self.idf.get(t, 0.0) * q for t, q in wanted.items())
        scores = np.zeros(len(self.frequencies))
        if ceiling <= 0:
            return scores
        norm = self.k1 * (1 - self.b + self.b * self.lengths / self.average)
        for row, frequency in enumerate(self.frequencies):
            for term, q in wanted.items():
                f = frequency.get(term, 0)
                if f:
                    scores[row] += q * self.idf[term] * f * (self.k1 + 1) / (f + norm[row])
        shares: np.ndarray = np.minimum(1.0, scores / ceiling)
        return shares


async def model_vectors(model: str, texts: list[str]) -> np.ndarray:
    embedder, _ = await load_embedder(model)
    try:
        response = await embedder.embeddings(EmbeddingsRequest(model_id=model, contents=list(texts)))
    finally:
        await embedder.shutdown()
    vectors = np.asarray(response.embeddings, dtype=np.float64)
    unit: np.ndarray = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    return unit


def recall_table(model: str) -> dict[tuple[float, float, float], dict[str, float]]:
    data = load_set()
    documents, queries = data["documents"], data["queries"]
    ids = [d["id"] for d in documents]
    texts = [d["text"] for d in documents]
    vectors = asyncio.run(model_vectors(model, texts + [q["query"] for q in queries]))
    cosines = vectors[len(texts) :] @ vectors[: len(texts)].T
    words = BM25Index()
    words.add(StoredChunk(d, 0, t, 0) for d, t in zip(ids, texts, strict=True))
    ngrams = NgramBM25(texts)
    row_of = {d: i for i, d in enumerate(ids)}
    table: dict[tuple[float, float, float], dict[str, float]] = {}
    for split in SPLITS:
        found: dict[str, list[bool]] = defaultdict(list)
        for i, question in enumerate(queries):
            cosine = cosines[i]
            # As the engine: each side's candidates, 50 deep; a chunk missing from a side gets
            # that side's lowest listed score.
            by_vector = np.argsort(-cosine, kind="stable")[:DEPTH]
            by_word = words.search(question["query"], DEPTH, {})
            ceiling = words.ceiling(question["query"])
            word_share = np.zeros(len(ids))
            if by_word and ceiling > 0:
                word_share[:] = min(1.0, by_word[-1].score / ceiling)
                for scored in by_word:
                    word_share[row_of[scored.chunk.document_id]] = min(1.0, scored.score / ceiling)
            candidates = set(by_vector.tolist()) | {row_of[s.chunk.document_id] for s in by_word}
            vector_floor = cosine[by_vector[-1]]
            ngram_share = ngrams.shares(question["query"])
            fused = {
                row: split[0] * (cosine[row] if row in set(by_vector.tolist()) else vector_floor)
                + split[1] * word_share[row]
                + split[2] * ngram_share[row]
                for row in candidates
            }
            best = sorted(fused, key=lambda row: (-fused[row], ids[row]))[:K]
            found[question["category"]].append(question["answer"] in {ids[row] for row in best})
        table[split] = {c: sum(hits) / len(hits) for c, hits in found.items()}
    return table


def main() -> None:
    data = load_set()
    texts = [d["text"] for d in data["documents"]]
    word_count = sum(len(terms(t)) for t in texts)
    ngram_count = sum(len(ngram_terms(t)) for t in texts)
    print(
        f"index terms per chunk: words {word_count / len(texts):.1f}, with {N}-grams added "
        f"{(word_count + ngram_count) / len(texts):.1f} ({(word_count + ngram_count) / word_count:.1f}x postings)"
    )
    for model in MODELS:
        if not available(model):
            print(f"{model}: skipped, needs {', '.join(MODELS[model])}")
            continue
        print(f"\nrecall@{K}, hybrid with a character {N}-gram signal, {model}")
        print(f"{'cosine/words/ngrams':<22}" + "".join(f"{c:>19}" for c in CATEGORIES))
        for split, recalls in recall_table(model).items():
            name = "/".join(f"{w:g}" for w in split) + (" (shipped)" if split == SPLITS[0] else "")
            print(f"{name:<22}" + "".join(f"{recalls[c]:>19.2f}" for c in CATEGORIES))


if __name__ == "__main__":
    main()
