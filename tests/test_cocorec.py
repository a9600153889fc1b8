"""CoCoRec: per-category sub-sequences, the category mixture, the neighbour memory."""

import numpy as np
import torch

from baselines.cocorec import CoCoRec
from baselines.sequential import PAD
from imrl.api import RunContext
from tests.supervised_helpers import cyclic_sequences, split_from_sequences

N_ITEMS = 12
CATEGORIES = np.arange(N_ITEMS) % 3          # item i has category i % 3 (category token i % 3 + 1)


def built(params=None, categories=CATEGORIES):
    params = {"epochs": 0, **(params or {})}
    split = split_from_sequences(cyclic_sequences(16, N_ITEMS, 9), N_ITEMS, item_categories=categories)
    method = CoCoRec({"d": 8, "max_len": 8, "memory_users": 8, **params}, RunContext(seed=0))
    method.fit(split)    # zero epochs: built, memory filled, untrained
    return method


def test_each_action_attends_only_within_its_category():
    net = built().model.eval()
    tokens = torch.tensor([[PAD, 1, 2, 4, 3, 7, 5, 10]])     # items 0 1 3 2 6 4 9: categories 0 1 0 2 0 1 0
    categories = net.token_category[tokens][0]
    patterns = net.encode(tokens)[0]
    perturbed = tokens.clone()
    perturbed[0, 2] = 5                                      # item 1 -> item 4: both category 1
    changed = (net.encode(perturbed)[0] - patterns).abs().amax(-1)[0] > 0
    later_same = (torch.arange(8) >= 2) & (categories == categories[2])
    assert torch.equal(changed, later_same)                 # other categories' sub-sequences untouched


def test_pattern_is_read_at_the_latest_action_of_the_category():
    net = built().model.eval()
    tokens = torch.tensor([[PAD, 1, 2, 4, 3, 7, 5, 10]])
    patterns, _, _, categories = net.encode(tokens)
    query = torch.tensor([[1, 2, 3]])                        # category tokens 1..3 (categories 0..2)
    pattern, found = net.pattern_for(patterns, categories, query)
    assert found.tolist() == [[True, True, True]]
    for column, position in enumerate([7, 6, 4]):             # latest category-0, -1, -2 actions
        assert torch.equal(pattern[0, column], patterns[0, position])
    early, found_early = net.pattern_for(patterns, categories, torch.tensor([[3, 3]]), visible=net.causal[[2, 5]])
    assert found_early.tolist() == [[False, True]]           # no category-2 action up to position 2
    assert torch.equal(early[0, 0], net.no_history.weight[3])


def test_scores_are_a_mixture_over_the_top_categories():
    method = built({"beam": 3})
    scores = method.score(torch.arange(4), "test")
    assert torch.allclose(scores.exp().sum(1), torch.ones(4), atol=1e-5)   # beam = all 3 categories
    method.params["beam"] = 1
    assert (method.score(torch.arange(4), "test").exp().sum(1) < 1).all()


def test_neighbours_are_other_users():
    method = built()
    method.memory_users = method.memory_users[:1]
    method.memory_patterns, method.memory_present = method.memory_patterns[:1], method.memory_present[:1]
    method.memory_present[:] = True
    query = torch.randn(2, 8)
    own = method.collaborate(query, torch.tensor([1, 1]), method.memory_users.repeat(2))
    other = method.collaborate(query, torch.tensor([1, 1]), method.memory_users.repeat(2) + 1)
    assert torch.equal(own, torch.zeros_like(own))
    assert torch.allclose(other, method.memory_patterns[0, 0].expand(2, -1))


def test_dataset_categories_are_used_and_pseudo_categories_labelled():
    method = built()
    assert method.substitutes == []
    assert method.model.token_category[1:].tolist() == (CATEGORIES + 1).tolist()
    unknown = built(categories=np.where(CATEGORIES == 2, -1, CATEGORIES))
    assert unknown.model.token_category[1:].tolist() == (CATEGORIES + 1).tolist()   # -1 is its own category
    pseudo = built({"n_pseudo_categories": 4, "pseudo_rank": 3}, categories=None)
    assert len(pseudo.substitutes) == 1 and "pseudo-categories" in pseudo.substitutes[0]
    assert pseudo.model.category_embedding.num_embeddings <= 5
