"""KGRL: its graph neighbourhoods (local knowledge network) and its GCN come from the
graph it was given; candidates rank above the other items."""

from __future__ import annotations

from collections import deque

import numpy as np
import pytest
import torch

from baselines.kgrl import KGRL, GraphItemEncoder, KGRLLearner, LocalKnowledge
from baselines.rl_common import Context
from baselines.side_info import KnowledgeGraph
from imrl.api import RunContext


def hand_graph() -> KnowledgeGraph:
    """Items 0..7 and categories 8, 9: 0-1-2 a co-occurrence chain, 3 and 4 in category
    8, 5 in category 9, 6 co-occurs with 7, 7 alone otherwise."""
    co = [(0, 1), (1, 2), (6, 7)]
    belongs = [(3, 8), (4, 8), (5, 9)]
    edges = [(a, 2, b) for a, b in co] + [(b, 2, a) for a, b in co]
    edges += [(item, 0, category) for item, category in belongs] + [(category, 1, item) for item, category in belongs]
    heads, relations, tails = (np.array(column) for column in zip(*edges))
    return KnowledgeGraph(offsets={"item": 0, "category": 8}, counts={"item": 8, "category": 2},
                          relations=["belongs_to", "contains", "co_occurs"], heads=heads,
                          relation_ids=relations, tails=tails,
                          relation_tail_types={"belongs_to": "category", "contains": "item", "co_occurs": "item"})


def bfs_items(graph: KnowledgeGraph, start: list[int], hops: int) -> set[int]:
    neighbours: dict[int, set[int]] = {}
    for h, t in zip(graph.heads.tolist(), graph.tails.tolist()):
        neighbours.setdefault(h, set()).add(t)
        neighbours.setdefault(t, set()).add(h)
    depth = {node: 0 for node in start}
    queue = deque(start)
    while queue:
        node = queue.popleft()
        if depth[node] == hops:
            continue
        for other in neighbours.get(node, ()):
            if other not in depth:
                depth[other] = depth[node] + 1
                queue.append(other)
    return {node for node in depth if node < graph.counts["item"]}


@pytest.mark.parametrize("hops", [0, 1, 2, 3])
def test_local_knowledge_network_is_the_k_hop_neighbourhood_in_the_given_graph(hops):
    graph = hand_graph()
    local = LocalKnowledge(graph, hops, torch.device("cpu"))
    pad = graph.counts["item"]
    windows = torch.tensor([[pad, pad, 0], [pad, 3, 6], [pad, pad, pad], [7, 5, 2]])
    candidates = local.candidates(windows)
    for row, window in enumerate(windows.tolist()):
        expected = bfs_items(graph, [i for i in window if i != pad], hops)
        assert set(candidates[row].nonzero().squeeze(1).tolist()) == expected, (hops, window)


def test_gcn_propagates_over_exactly_the_given_edges():
    graph = hand_graph()
    encoder = GraphItemEncoder(graph, torch.randn(graph.n_nodes, 4), layers=1)
    a_hat = encoder.a_hat.to_dense()
    expected = np.eye(graph.n_nodes, dtype=bool)
    expected[graph.heads, graph.tails] = expected[graph.tails, graph.heads] = True
    assert ((a_hat > 0).numpy() == expected).all()
    degree = expected.sum(1)
    assert torch.allclose(a_hat, torch.from_numpy(expected / np.sqrt(np.outer(degree, degree))).float())
    # An isolated item (no edge) keeps only its own features through the layer.
    lonely = KnowledgeGraph(offsets={"item": 0}, counts={"item": 2}, relations=["co_occurs"],
                            heads=np.zeros(0, np.int64), relation_ids=np.zeros(0, np.int64), tails=np.zeros(0, np.int64),
                            relation_tail_types={"co_occurs": "item"})
    alone = GraphItemEncoder(lonely, torch.eye(2), layers=1)
    assert torch.allclose(alone(), alone.weights[0](torch.eye(2)))


def test_candidates_rank_above_every_other_item():
    graph = hand_graph()
    learner = KGRLLearner(8, 3, 0, 4, {**KGRL.defaults, "hops": 2}, torch.device("cpu"), graph,
                          torch.randn(graph.n_nodes, 4))
    pad = 8
    context = Context(torch.tensor([[pad, pad, 3]]), torch.full((1, 3), pad), None)
    scores = learner.scores(context)
    candidates = {3, 4}   # two hops: 3, its category, the category's other item 4
    ranked = scores[0].argsort(descending=True).tolist()
    assert set(ranked[:2]) == candidates
    slate = learner.act(context, torch.ones(1, 8, dtype=torch.bool), explore=False)
    assert set(slate[0, :2].tolist()) == candidates   # then the best of the rest


def test_fitted_kgrl_uses_the_graph_it_built(split_small):
    method = KGRL({"knn": 5, "n_envs": 16, "env": {"max_steps": 4}}, RunContext(seed=0, budget={"env_steps": 128}))
    method.fit(split_small)
    adjacency = method.learner.local.adjacency.to_dense().numpy() > 0
    assert (adjacency == (method.graph.adjacency().toarray() > 0)).all()
    assert method.graph.counts["category"] == len(np.unique(split_small.item_categories))
    assert any("pseudo-KG" in note for note in method.substitutes)
