"""PGPR: walks (training and beam search) only follow edges of the graph, the beam's
items are distinct, action pruning keeps the best user-conditioned edges, rewards are
PGPR's soft terminal reward."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from baselines.pgpr import PGPR, USER_TO_TYPE, KGWalk, slate_log_probs
from imrl.api import RunContext
from tests.conftest import small_split

PARAMS = {"max_acts": 20, "kge_epochs": 2, "hidden": [64, 32], "n_envs": 16}


@pytest.fixture(scope="module")
def pgpr():
    method = PGPR(PARAMS, RunContext(seed=0, budget={"env_steps": 480}))
    method.fit(small_split(0))
    return method


def assert_paths_in_graph(method: PGPR, paths: torch.Tensor, relations: torch.Tensor) -> None:
    graph, self_loop = method.graph, method.walk.self_loop
    for nodes, rels in zip(paths.tolist(), relations.tolist()):
        if nodes[0] < 0:   # padding of the beam
            continue
        for hop, relation in enumerate(rels):
            head, tail = nodes[hop], nodes[hop + 1]
            if relation == self_loop:
                assert head == tail
            else:
                assert graph.has_edge(head, relation, tail), (head, graph.relations[relation], tail)
                assert tail not in nodes[:hop + 1]   # visited nodes are never re-entered


def test_training_walks_never_leave_the_graph(pgpr):
    users = torch.arange(40) + pgpr.graph.offsets["user"]
    torch.manual_seed(3)
    pgpr.policy.train()
    *_, (paths, relations) = pgpr.rollout(users, sample=True)
    pgpr.policy.eval()
    assert paths.shape == (40, 4)
    assert_paths_in_graph(pgpr, paths, relations)


def test_beam_paths_stay_in_the_graph_and_its_items_are_distinct(pgpr):
    users = torch.arange(30)
    paths, relations, probs = pgpr.beam_search(users + pgpr.graph.offsets["user"])
    assert paths.shape[:2] == probs.shape and paths.shape[2] == 4
    for user in range(30):
        assert_paths_in_graph(pgpr, paths[user], relations[user])
    scores = pgpr.recommend(users)
    offset, n_items = pgpr.walk.item_offset, pgpr.walk.n_items
    repeated = False
    for user in range(30):
        final = paths[user, :, -1]
        ends = final[(final >= offset) & (final < offset + n_items)] - offset
        recommended = torch.isfinite(scores[user]).nonzero().squeeze(1)
        assert sorted(set(ends.tolist())) == recommended.tolist()   # each reached item once
        repeated |= len(ends) > len(recommended)
    assert repeated, "no user reached an item twice: the de-duplication was not exercised"


def test_beam_widths_bound_the_number_of_paths(pgpr):
    paths, _, probs = pgpr.beam_search(torch.arange(5) + pgpr.graph.offsets["user"])
    assert paths.shape[1] <= int(np.prod(pgpr.params["beam"]))
    valid = paths[:, :, 0] >= 0
    assert ((probs > 0) == valid).all() and (probs[valid] <= 1.0).all()


def test_action_pruning_keeps_the_best_user_conditioned_edges_in_pgpr_order(pgpr):
    walk = KGWalk(pgpr.graph, pgpr.transe, max_acts=5, device=torch.device("cpu"))
    graph = pgpr.graph
    indptr, edge_relations, edge_tails = graph.csr
    item = int(np.argmax(np.diff(indptr)[graph.offsets["item"]:graph.offsets["item"] + graph.counts["item"]]))
    item_node, user_node = item + graph.offsets["item"], graph.offsets["user"] + 3
    relations, tails, valid = walk.actions(torch.tensor([user_node]), torch.tensor([[user_node, item_node]]))
    assert relations[0, 0] == walk.self_loop and tails[0, 0] == item_node and valid[0].all()
    # Brute force: score every unvisited out-edge, keep the 5 best, sort by (relation, tail).
    entities, table = pgpr.transe.entities, pgpr.transe.relation_table()
    candidates = []
    for e in range(indptr[item_node], indptr[item_node + 1]):
        tail, relation = int(edge_tails[e]), int(edge_relations[e])
        if tail in (user_node, item_node):
            continue
        source = entities[user_node] + sum((table[graph.relations.index(r)] for r in
                                            USER_TO_TYPE[graph.node_type(tail)]), torch.zeros(entities.shape[1]))
        candidates.append((float(source @ entities[tail]), relation, tail))
    best = sorted(sorted(candidates, reverse=True)[:5], key=lambda c: (c[1], c[2]))
    assert [(r, t) for _, r, t in best] == list(zip(relations[0, 1:].tolist(), tails[0, 1:].tolist()))


def test_terminal_reward_is_pgprs_soft_reward(pgpr):
    walk, graph = pgpr.walk, pgpr.graph
    rel = walk.relation_index
    indptr, edge_relations, edge_tails = graph.csr
    user = graph.offsets["user"]
    first = int(edge_tails[indptr[user]])   # an item the user bought
    co = [int(t) for r, t in zip(edge_relations[indptr[first]:indptr[first + 1]], edge_tails[indptr[first]:indptr[first + 1]])
          if r == rel["co_occurs"]]
    second = co[0]
    third = next(int(t) for r, t in zip(edge_relations[indptr[second]:indptr[second + 1]],
                                        edge_tails[indptr[second]:indptr[second + 1]])
                 if r == rel["co_occurs"] and int(t) not in (first, second))
    paths = torch.tensor([[user, first, second, third], [user, first, second, second]])
    relations = torch.tensor([[rel["purchase"], rel["co_occurs"], rel["co_occurs"]],
                              [rel["purchase"], rel["co_occurs"], walk.self_loop]])
    reward = walk.reward(paths, relations)
    item_scores = walk.user_item_scores(torch.tensor([user]))[0]
    expected = max(0.0, float(item_scores[third - walk.item_offset] / item_scores.max()))
    assert reward[0].item() == pytest.approx(expected, rel=1e-5) and 0.0 <= reward[0] <= 1.0
    assert reward[1].item() == 0.0   # no valid pattern


def test_slate_log_probs_draw_without_replacement():
    log_probs = torch.log_softmax(torch.tensor([[1.0, 2.0, 0.5, -1.0]]), dim=1)
    out = slate_log_probs(log_probs, torch.tensor([[1, 0]]))
    p = log_probs.exp()[0]
    assert out[0, 0].exp().item() == pytest.approx(p[1].item())
    assert out[0, 1].exp().item() == pytest.approx((p[0] / (1 - p[1])).item())


def test_pgpr_records_its_pseudo_kg_substitute(pgpr):
    assert any("PGPR knowledge graph: pseudo-KG" in note for note in pgpr.substitutes)
