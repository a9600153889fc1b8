"""Side information for the knowledge-aware RL baselines: item categories and a typed
knowledge graph, built from what a split carries, with labelled substitutes where it
carries nothing.

- Categories (DEERS's competitor items, the category nodes of the graph). The split's
  ``item_categories`` where it has them (e.g. MovieLens genres, the synthetic generator's
  clusters); otherwise *pseudo-categories*: k-means over item vectors (the offline
  environment's item embedding table, an SVD of the training interactions).
- Knowledge graph (KGRL, PGPR). None of our datasets ships one, so the graph is a
  *pseudo-KG* (the substitute named in the project notes): item-category edges
  (``belongs_to`` / ``contains``) plus an item-item co-occurrence kNN graph
  (``co_occurs``: each item linked to the ``knn`` items most often consumed by the same
  users in training, the stand-in for Amazon's also-bought); PGPR adds user nodes and
  ``purchase`` / ``purchased_by`` edges from the training interactions, as its paper does.

Every substitute comes back as a sentence for the method's ``substitutes`` list.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
import scipy.sparse as sp

from imrl.data.split import Split
from imrl.envs.offline import item_embedding_table

#: Items whose co-occurrence rows are computed at once (bounds memory on large catalogues).
COOCCURRENCE_CHUNK = 4096
#: Dimension of the item embeddings that pseudo-categories cluster.
PSEUDO_CATEGORY_DIM = 32


def kmeans(vectors: np.ndarray, n_clusters: int, rng: np.random.Generator, iterations: int = 30) -> np.ndarray:
    """Lloyd's k-means with k-means++ seeding; labels [n] int64. Deterministic for `rng`."""
    n = len(vectors)
    n_clusters = min(n_clusters, n)
    centres = [vectors[rng.integers(n)]]
    distance = ((vectors - centres[0]) ** 2).sum(1)
    for _ in range(1, n_clusters):   # k-means++: the next centre with probability ~ squared distance
        total = distance.sum()
        centres.append(vectors[rng.choice(n, p=distance / total)] if total > 0 else vectors[rng.integers(n)])
        distance = np.minimum(distance, ((vectors - centres[-1]) ** 2).sum(1))
    centres = np.stack(centres)
    labels = np.full(n, -1, dtype=np.int64)
    for _ in range(iterations):
        # ||v - c||^2 up to the per-row constant ||v||^2
        new_labels = ((centres ** 2).sum(1)[None, :] - 2.0 * vectors @ centres.T).argmin(1)
        if np.array_equal(new_labels, labels):   # converged
            break
        labels = new_labels
        for c in range(n_clusters):
            members = vectors[labels == c]
            if len(members):
                centres[c] = members.mean(0)
    return labels


def item_categories(split: Split, n_pseudo: int, seed: int) -> tuple[np.ndarray, list[str]]:
    """(category per item int64 [n_items], -1 = unknown; substitute notes)."""
    if split.item_categories is not None and (np.asarray(split.item_categories) >= 0).any():
        categories = np.asarray(split.item_categories, dtype=np.int64)
        if len(categories) != split.n_items:
            raise ValueError(f"split {split.name!r}: item_categories has {len(categories)} entries; "
                             f"expected n_items = {split.n_items}")
        return categories, []
    vectors = item_embedding_table(split, PSEUDO_CATEGORY_DIM).astype(np.float64)
    labels = kmeans(vectors, n_pseudo, np.random.default_rng(seed))
    return labels, [f"pseudo-categories: k-means (k={n_pseudo}) over {PSEUDO_CATEGORY_DIM}-dimensional item embeddings "
                    f"(the offline environment's SVD of the training interactions); split {split.name!r} has no "
                    "item categories"]


def cooccurrence_neighbours(split: Split, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Directed kNN edges (item, neighbour): for every item, the `k` other items consumed
    by the most common training users (ties: lower id); items never co-consumed get none."""
    indptr, items = split.csr("train")
    owners = np.repeat(np.arange(split.n_users), np.diff(indptr))
    x = sp.csr_matrix((np.ones(len(items), np.float32), (owners, items)), shape=(split.n_users, split.n_items))
    x.data[:] = 1.0
    xt = x.T.tocsr()
    sources, targets = [], []
    for start in range(0, split.n_items, COOCCURRENCE_CHUNK):
        stop = min(start + COOCCURRENCE_CHUNK, split.n_items)
        counts = (xt[start:stop] @ x).toarray()
        counts[np.arange(stop - start), np.arange(start, stop)] = 0.0   # no self-loops
        # Highest count first, then lower id: argsort of (-count) is stable over ids.
        order = np.argsort(-counts, axis=1, kind="stable")[:, :k]
        kept = np.take_along_axis(counts, order, axis=1) > 0
        rows = np.repeat(np.arange(start, stop)[:, None], order.shape[1], axis=1)
        sources.append(rows[kept])
        targets.append(order[kept])
    return np.concatenate(sources).astype(np.int64), np.concatenate(targets).astype(np.int64)


@dataclass
class KnowledgeGraph:
    """A typed directed multigraph. Nodes are numbered type by type (``offsets``); every
    edge has a relation id (``relations`` names them); each relation's inverse is stored
    as its own relation so that walks can go both ways."""

    offsets: dict[str, int]       # node type -> first global node id
    counts: dict[str, int]        # node type -> number of nodes
    relations: list[str]
    heads: np.ndarray             # int64 [n_edges]
    relation_ids: np.ndarray      # int64 [n_edges]
    tails: np.ndarray             # int64 [n_edges]
    relation_tail_types: dict[str, str]   # relation -> type of its tail nodes

    @property
    def n_nodes(self) -> int:
        return sum(self.counts.values())

    def node_type(self, node: int) -> str:
        for name, offset in self.offsets.items():
            if offset <= node < offset + self.counts[name]:
                return name
        raise IndexError(f"node {node} is outside the graph's {self.n_nodes} nodes")

    @cached_property
    def csr(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(indptr [n_nodes+1], relation ids, tails) of the outgoing edges, sorted by head,
        then relation, then tail (the order PGPR lists actions in)."""
        order = np.lexsort((self.tails, self.relation_ids, self.heads))
        indptr = np.zeros(self.n_nodes + 1, dtype=np.int64)
        np.cumsum(np.bincount(self.heads, minlength=self.n_nodes), out=indptr[1:])
        return indptr, self.relation_ids[order], self.tails[order]

    @cached_property
    def edge_set(self) -> set[tuple[int, int, int]]:
        return set(zip(self.heads.tolist(), self.relation_ids.tolist(), self.tails.tolist()))

    def has_edge(self, head: int, relation: int, tail: int) -> bool:
        return (head, relation, tail) in self.edge_set

    def adjacency(self) -> sp.csr_matrix:
        """Binary symmetric node adjacency (relations merged, no self-loops)."""
        a = sp.csr_matrix((np.ones(len(self.heads), np.float32), (self.heads, self.tails)),
                          shape=(self.n_nodes, self.n_nodes))
        a = ((a + a.T) > 0).astype(np.float32)
        a.setdiag(0.0)
        a.eliminate_zeros()
        return a.tocsr()


def build_knowledge_graph(split: Split, categories: np.ndarray, knn: int, with_users: bool) -> KnowledgeGraph:
    """The pseudo-KG of the module docstring: items, their categories, co-occurrence kNN
    edges, and (``with_users``) users with their training interactions."""
    n_items = split.n_items
    category_ids = np.unique(categories[categories >= 0])
    counts = {"item": n_items, "category": len(category_ids)}
    if with_users:
        counts = {"user": split.n_users, **counts}
    offsets, start = {}, 0
    for name, count in counts.items():
        offsets[name] = start
        start += count
    edges: list[tuple[str, np.ndarray, np.ndarray]] = []

    def add(relation: str, inverse: str, heads: np.ndarray, tails: np.ndarray) -> None:
        edges.append((relation, heads, tails))
        if inverse:
            edges.append((inverse, tails, heads))

    tail_types = {}
    if with_users:
        indptr, items = split.csr("train")
        pairs = np.unique(np.stack([np.repeat(np.arange(split.n_users), np.diff(indptr)), items], 1), axis=0)
        add("purchase", "purchased_by", pairs[:, 0] + offsets["user"], pairs[:, 1] + offsets["item"])
        tail_types.update(purchase="item", purchased_by="user")
    known = np.flatnonzero(categories >= 0)
    category_node = np.searchsorted(category_ids, categories[known]) + offsets["category"]
    add("belongs_to", "contains", known + offsets["item"], category_node)
    tail_types.update(belongs_to="category", contains="item")
    heads, tails = cooccurrence_neighbours(split, knn)
    # kNN is not symmetric; the graph keeps both directions of every kNN pair (one relation).
    pairs = np.unique(np.concatenate([np.stack([heads, tails], 1), np.stack([tails, heads], 1)]), axis=0)
    add("co_occurs", "", pairs[:, 0] + offsets["item"], pairs[:, 1] + offsets["item"])
    tail_types["co_occurs"] = "item"

    relations = [name for name, _, _ in edges]
    return KnowledgeGraph(
        offsets=offsets, counts=counts, relations=relations,
        heads=np.concatenate([h for _, h, _ in edges]).astype(np.int64),
        relation_ids=np.concatenate([np.full(len(h), i, dtype=np.int64) for i, (_, h, _) in enumerate(edges)]),
        tails=np.concatenate([t for _, _, t in edges]).astype(np.int64),
        relation_tail_types=tail_types)


def pseudo_kg_note(split: Split, knn: int, categories_note: list[str]) -> str:
    source = "pseudo-categories" if categories_note else f"item categories ({split.side_info.get('item_categories', 'split')})"
    return (f"pseudo-KG: {source} plus an item-item co-occurrence kNN graph (k={knn}) from the training "
            f"interactions; split {split.name!r} has no knowledge graph")
