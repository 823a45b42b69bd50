"""The vectors of one FAISS bank, searchable exactly or through an approximate index.

Every kind keeps its rows by position: `ids[p]` is the chunk id at position p. Chunk ids grow
with every insert and rows are only ever appended in id order, so `ids` stays sorted and an id
finds its position by binary search. Deleting marks positions dead (HNSW cannot remove nodes);
searches skip dead positions through a bitmap selector, and the index is rebuilt from its live
rows once the dead outnumber them, so a delete costs O(1) amortised.

- exact: IndexFlatIP, a scan of every vector.
- hnsw: IndexHNSWFlat (inner product on unit vectors = cosine), efSearch per query.
- ivf: IndexIVFFlat, trained on the bank's vectors when it is built, `nprobe` clusters per query
  (`ivf_probe`, else `default_probe`);
  below a few thousand rows it cannot be trained and stays exact.

A filtered query with few matching rows is answered exactly from those rows' vectors; graph and
cluster searches with a selective filter would otherwise miss matches.
"""

from __future__ import annotations

import math
from typing import Any, Literal

import faiss
import numpy as np
from numpy.typing import NDArray

from ..common.config import VectorIndexConfig
from ..common.types import Vectors

_untyped_faiss: Any = faiss  # faiss-cpu's stubs lack the classes used through this name

Built = Literal["exact", "hnsw", "ivf"]
Ids = NDArray[np.int64]

IVF_MIN_ROWS_PER_LIST = 39  # FAISS's k-means warns below this many training points per centroid
IVF_PROBE_PER_ROOT_LIST = 5.5  # see default_probe
EXACT_FILTER_ROWS = 20_000  # filtered queries matching at most this many rows are answered exactly


def target_kind(settings: VectorIndexConfig, live_rows: int) -> Built:
    """The kind a bank of `live_rows` chunks should have under `settings`."""
    if settings.kind == "auto":
        return "hnsw" if live_rows >= settings.auto_threshold else "exact"
    if settings.kind == "ivf" and live_rows < IVF_MIN_ROWS_PER_LIST * 16:
        return "exact"  # too few rows to train 16 clusters
    return settings.kind


def needs_rebuild(index: RowIndex, settings: VectorIndexConfig) -> bool:
    """After a write: the dead outnumber the live, the bank outgrew its kind (auto -> hnsw, a
    too-small ivf bank -> ivf), or an ivf bank outgrew its clusters (retrained at 2x the lists)."""
    live = index.live_rows
    if index.dead_rows > max(live, 1000):
        return True
    wanted = target_kind(settings, live)
    if index.kind == "exact":
        return wanted != "exact"
    if index.kind == "ivf" and not settings.ivf_lists:
        return _ivf_lists(settings, live) >= 2 * int(index.index.nlist)
    return False


def _ivf_lists(settings: VectorIndexConfig, rows: int) -> int:
    wanted = settings.ivf_lists or int(2 * math.sqrt(rows))
    return max(1, min(wanted, rows // IVF_MIN_ROWS_PER_LIST))


def default_probe(lists: int) -> int:
    """Clusters an IVF query scans unless the bank sets `ivf_probe`: 5.5 x sqrt(lists). A fixed
    share of the lists either misses (lists / 8 found 0.868 of the exact top 10 at 100k chunks) or
    costs too much at scale (lists / 4 would double the 1M query, 15.6 ms at lists / 8). With about
    2 x sqrt(rows) lists the share scanned falls as the bank grows: 27% of 419 lists at 100k
    (recall@10 0.972 on the clustered benchmark), 13% of 1,678 at 1M (0.976, 17 ms of CPU)."""
    return max(16, round(IVF_PROBE_PER_ROOT_LIST * math.sqrt(lists)))


def new_index(kind: Built, settings: VectorIndexConfig, dimension: int, training: Vectors) -> Any:
    """An empty index of `kind`; IVF is trained on `training` (a sample of the bank's rows)."""
    if kind == "hnsw":
        hnsw = faiss.IndexHNSWFlat(dimension, settings.hnsw_m, faiss.METRIC_INNER_PRODUCT)
        hnsw.hnsw.efConstruction = settings.hnsw_ef_construction
        return hnsw
    if kind == "ivf":
        lists = _ivf_lists(settings, len(training))
        ivf = faiss.IndexIVFFlat(faiss.IndexFlatIP(dimension), dimension, lists, faiss.METRIC_INNER_PRODUCT)
        # k-means on ~50 rows per cluster, 10 rounds: enough for IVF, and bounded on big banks
        sample = training[np.random.default_rng(0).permutation(len(training))[: lists * 50]]
        ivf.cp.niter = 10
        ivf.train(np.ascontiguousarray(sample))
        ivf.make_direct_map()  # lets a filtered query read rows' vectors back
        return ivf
    return faiss.IndexFlatIP(dimension)


def kind_of(index: Any) -> Built:
    if isinstance(index, faiss.IndexHNSWFlat):
        return "hnsw"
    if isinstance(index, faiss.IndexIVFFlat):
        return "ivf"
    return "exact"


class RowIndex:
    """A FAISS index over positions, with the chunk id and liveness of every position."""

    def __init__(self, index: Any, ids: Ids, settings: VectorIndexConfig) -> None:
        self.index = index
        self.kind = kind_of(index)
        self.ids = ids
        self.live = np.ones(len(ids), dtype=bool)
        self.settings = settings
        self._bitmap: NDArray[np.uint8] | None = None  # packed `live`, kept while a search uses it

    @property
    def dead_rows(self) -> int:
        return int(len(self.live) - np.count_nonzero(self.live))

    @property
    def live_rows(self) -> int:
        return int(np.count_nonzero(self.live))

    def add(self, ids: Ids, vectors: Vectors) -> None:
        if len(ids) == 0:
            return
        self.index.add(np.ascontiguousarray(vectors, np.float32))
        self.ids = np.concatenate([self.ids, ids])
        self.live = np.concatenate([self.live, np.ones(len(ids), dtype=bool)])

    def positions(self, ids: Ids) -> Ids:
        """Positions of those of `ids` that this index holds."""
        found = np.searchsorted(self.ids, ids)
        found = found[found < len(self.ids)]
        return found[np.isin(self.ids[found], ids)].astype(np.int64)

    def remove(self, ids: Ids) -> None:
        self.live[self.positions(ids)] = False

    def vectors(self, positions: Ids) -> Vectors:
        result: Vectors = self.index.reconstruct_batch(positions)
        return result

    def live_vectors(self) -> tuple[Ids, Vectors]:
        positions = np.flatnonzero(self.live).astype(np.int64)
        if len(positions) == 0:
            return self.ids[:0], np.zeros((0, self.index.d), np.float32)
        return self.ids[positions], self.vectors(positions)

    def search(self, query: Vectors, k: int, allowed: Ids | None) -> list[tuple[int, float]]:
        """(chunk id, cosine) of the best k live rows, restricted to `allowed` ids when given."""
        if allowed is not None:
            positions = self.positions(allowed)
            positions = positions[self.live[positions]]
            if len(positions) <= EXACT_FILTER_ROWS:
                return self._scan(query, k, positions)
            selector: Any = faiss.IDSelectorBatch(positions)
        elif self.dead_rows:
            self._bitmap = np.packbits(self.live, bitorder="little")
            selector = faiss.IDSelectorBitmap(len(self.live), faiss.swig_ptr(self._bitmap))
        else:
            selector = None
        scores, found = self.index.search(np.ascontiguousarray(query), k, params=self._params(k, selector))
        return [(int(self.ids[p]), float(s)) for s, p in zip(scores[0], found[0], strict=True) if p >= 0]

    def _scan(self, query: Vectors, k: int, positions: Ids) -> list[tuple[int, float]]:
        if len(positions) == 0:
            return []
        scores = self.vectors(positions) @ query[0]
        best = np.argsort(-scores, kind="stable")[:k]
        return [(int(self.ids[positions[i]]), float(scores[i])) for i in best]

    def _params(self, k: int, selector: Any) -> Any:
        if self.kind == "hnsw":
            params = _untyped_faiss.SearchParametersHNSW()
            params.efSearch = max(self.settings.hnsw_ef_search, k)
        elif self.kind == "ivf":
            params = faiss.SearchParametersIVF()
            lists = self.index.nlist
            params.nprobe = min(lists, self.settings.ivf_probe or default_probe(lists))
        else:
            params = faiss.SearchParameters()
        if selector is not None:
            params.sel = selector
        return params


def build(kind: Built, settings: VectorIndexConfig, dimension: int, ids: Ids, vectors: Vectors) -> RowIndex:
    """A fresh index of `kind` holding exactly these rows (ids ascending)."""
    index = RowIndex(new_index(kind, settings, dimension, vectors), ids[:0], settings)
    index.add(ids, vectors)
    return index
