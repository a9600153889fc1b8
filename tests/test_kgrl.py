"""KGRL: its graph neighbourhoods (local knowledge network) and its GCN come from the
graph it was given; candidates rank above the other items; the per-item critic is only
asked about item embeddings (TD target, actor step), so its values do not run away."""

from __future__ import annotations

from collections import deque

import numpy as np
import pytest
import torch

from baselines.kgrl import DEFAULTS, KGRL, GraphItemEncoder, KGRLLearner, LocalKnowledge
from baselines.rl_common import Context, exclude
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


def learner_with_one_transition(rewards: float = 0.0) -> tuple[KGRLLearner, Context]:
    """A KGRL learner over the hand graph whose buffer holds one transition, repeated."""
    graph = hand_graph()
    torch.manual_seed(0)
    learner = KGRLLearner(8, 2, 0, 4, {**KGRL.defaults, "batch_size": 8}, torch.device("cpu"), graph,
                          0.3 * torch.randn(graph.n_nodes, 4))
    pad = 8
    context = Context(torch.tensor([[pad, 0, 3]] * 8), torch.tensor([[pad, pad, 5]] * 8), None)
    learner.observe(context, torch.tensor([[1, 4]] * 8), torch.full((8, 2), rewards), context,
                    torch.zeros(8, dtype=torch.bool), torch.zeros(8, dtype=torch.bool))
    return learner, context


def test_td_target_values_the_next_state_at_the_item_the_target_policy_recommends(monkeypatch):
    # The critic learns Q(s, e_i) at item embeddings only; bootstrapping from Q'(s', mu'(s'))
    # (the emitted vector, where it never learns) made its values run away.
    learner, context = learner_with_one_transition()
    with torch.no_grad():   # the target networks before the update's soft step
        items = learner.target.item_embeddings()
        ranking = learner.ranking(context, learner.target.actor(learner.target.state(context, items)), items)
        best = exclude(exclude(ranking, context.history), context.skipped).argmax(1)
    asked = []
    q = learner.target.q
    monkeypatch.setattr(learner.target, "q", lambda state, action: asked.append(action) or q(state, action))
    learner.update()
    assert len(asked) == 1 and torch.equal(asked[0], items[best])
    assert not {0, 3, 5} & set(best.tolist())   # never an item of the windows


def test_the_actor_step_asks_the_critic_at_the_items_scale(monkeypatch):
    # mu(s) is a tanh vector (norm up to sqrt(d)); the critic learns at item embeddings, ~10x
    # shorter offline. The ranking <mu(s), e_i> ignores the norm, so the actor's step asks Q at
    # mu(s) rescaled to the items' mean norm, where Q is learned, not extrapolated.
    learner, _ = learner_with_one_transition()
    mean_norm = learner.net.item_embeddings().detach().norm(dim=1).mean()   # the items the update starts from
    asked = []
    q = learner.net.q
    monkeypatch.setattr(learner.net, "q", lambda state, action: asked.append(action.detach()) or q(state, action))
    learner.update()
    critic_step, actor_step = asked
    assert len(critic_step) == 8 * 2 and len(actor_step) == 8
    assert torch.allclose(actor_step.norm(dim=1), mean_norm.expand(8), rtol=1e-4)


def test_critic_values_converge_to_the_return_without_overshooting():
    # Every slot earns 1 forever, gamma 0.5, the online tau: every shown item is worth 1 / (1 - 0.5) = 2. With
    # the target and the actor's step at the emitted tanh vector, Q rose past it (2.49 after
    # 600 updates and climbing); valued at item embeddings it approaches 2 from below.
    n, k, users = 30, 3, 16
    heads, tails = np.arange(n), (np.arange(n) + 1) % n   # a ring of co-occurrences
    graph = KnowledgeGraph(offsets={"item": 0}, counts={"item": n}, relations=["co_occurs"],
                           heads=np.concatenate([heads, tails]), relation_ids=np.zeros(2 * n, np.int64),
                           tails=np.concatenate([tails, heads]), relation_tail_types={"co_occurs": "item"})
    torch.manual_seed(0)
    features = torch.nn.functional.normalize(torch.randn(n, 8), dim=1)
    learner = KGRLLearner(n, k, 0, 8, {**DEFAULTS, "batch_size": 32, "gamma": 0.5}, torch.device("cpu"), graph,
                          features)
    context = Context(torch.randint(0, n, (users, 4)), torch.full((users, 4), n), None)
    never = torch.zeros(users, dtype=torch.bool)
    for _ in range(600):
        slate = learner.act(context, None, explore=True)
        learner.observe(context, slate, torch.ones(users, k), context, never, never)
        learner.update()
    with torch.no_grad():
        items = learner.net.item_embeddings()
        state = learner.net.state(context, items)
        values = learner.net.q(state.repeat_interleave(n, 0), items.repeat(users, 1))
    assert 1.5 < values.mean() < 2.05, values.mean()
