"""CauseRec: the dispensable/indispensable split follows the concept scores, and the
counterfactual transformations replace only the concepts of the chosen side."""

import torch

from baselines.causerec import CauseRec, split_concepts
from baselines.sequential import PAD, random_subset
from imrl.api import RunContext
from tests.supervised_helpers import cyclic_sequences, split_from_sequences


def test_split_follows_the_scores():
    scores = torch.tensor([[0.1, 0.9, 0.5, 0.3, 0.7], [5.0, 1.0, 3.0, 2.0, 4.0], [9.0, 9.0, 0.2, -1.0, 0.0]])
    real = torch.tensor([[True] * 5, [False, False, True, True, True], [False, False, False, False, True]])
    indispensable, dispensable = split_concepts(scores, real)
    assert indispensable.tolist() == [[False, True, True, False, True],     # top ceil(5/2)=3: 0.9, 0.7, 0.5
                                      [False, False, True, False, True],    # top ceil(3/2)=2 of (3, 2, 4): 4, 3
                                      [False, False, False, False, True]]
    assert dispensable.tolist() == [[True, False, False, True, False],
                                    [False, False, False, True, False],
                                    [False] * 5]
    assert not (indispensable & dispensable).any() and torch.equal(indispensable | dispensable, real)


def test_counterfactual_edits_only_the_chosen_concepts():
    split = split_from_sequences(cyclic_sequences(10, 12, 8), n_items=12)
    method = CauseRec({"d": 8, "max_len": 6, "n_interests": 3}, RunContext(seed=0))
    method.model = method.build(split)
    tokens = torch.tensor([[PAD, 2, 3, 4, 5, 6], [7, 8, 9, 10, 11, 12]])
    target = method.model.item_embedding(torch.tensor([4, 9]))
    scores = (method.model.item_embedding(tokens) * target[:, None]).sum(-1)
    indispensable, dispensable = split_concepts(scores, tokens != PAD)
    for side in (indispensable, dispensable):
        replace = random_subset(side, torch.ceil(0.5 * side.sum(1, keepdim=True)), torch.Generator().manual_seed(0))
        memory = torch.tensor([100, 101, 102])               # sentinel tokens: edits are visible
        edited = method.replace_concepts(tokens, replace, memory)
        assert torch.equal(edited >= 100, replace)
        assert torch.equal(edited[~replace], tokens[~replace])
        assert (replace.sum(1) == torch.ceil(side.sum(1) / 2)).all()


def test_interest_level_replaces_proposal_vectors():
    split = split_from_sequences(cyclic_sequences(10, 12, 8), n_items=12)
    method = CauseRec({"d": 4, "max_len": 6, "n_interests": 4, "level": "interest"}, RunContext(seed=0))
    method.model = method.build(split)
    interests = method.model.interests(torch.tensor([[1, 2, 3, 4, 5, 6]]))
    replace = torch.tensor([[True, False, False, True]])
    edited = method.replace_concepts(interests, replace, torch.full((2, 4), 7.0))
    assert (edited[replace] == 7.0).all() and torch.equal(edited[~replace], interests[~replace])
