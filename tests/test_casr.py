"""CASR: counterfactual sequences differ from the originals only where the sampler edited."""

import pytest
import torch

from baselines.casr import CASR
from baselines.sequential import PAD
from baselines.stamp import STAMP
from imrl.api import RunContext
from tests.supervised_helpers import cyclic_sequences, split_from_sequences


def casr_with_anchor(sampler, edits):
    split = split_from_sequences(cyclic_sequences(20, 15, 10), n_items=15)
    method = CASR({"sampler": sampler, "edits": edits, "d": 8, "max_len": 6}, RunContext(seed=0))
    method.anchor = STAMP({"d": 8, "max_len": 6}, RunContext(seed=0))
    method.anchor.model = method.anchor.build(split)
    return method


@pytest.mark.parametrize("sampler", ["heuristic", "learned"])
@pytest.mark.parametrize("edits", [1, 2])
def test_edits_change_exactly_the_chosen_positions(sampler, edits):
    method = casr_with_anchor(sampler, edits)
    tokens = torch.tensor([[PAD, PAD, 3, 4, 5, 6], [1, 2, 3, 4, 5, 6], [PAD, PAD, PAD, PAD, PAD, 9]] * 5)
    edited, where = method.counterfactual(tokens, torch.Generator().manual_seed(0))
    assert torch.equal(edited != tokens, where)              # changed exactly where edited
    assert (edited[tokens == PAD] == PAD).all()              # padding untouched
    assert not where[tokens == PAD].any()
    assert where.sum(1).tolist() == [edits, edits, 1] * 5    # the last row has a single real item
    assert ((edited >= 1) & (edited <= 15))[tokens != PAD].all()


def test_learned_sampler_moves_towards_a_new_prediction():
    method = casr_with_anchor("learned", 1)
    tokens = torch.tensor([[1, 2, 3, 4, 5, 6], [7, 8, 9, 10, 11, 12]])
    where = torch.zeros_like(tokens, dtype=torch.bool)
    where[:, -1] = True
    method.params["delta_steps"] = 0          # no move: the nearest other item to x_k itself
    nearest = method.nearest_to_counterfactual(tokens, where)
    table = method.anchor.model.embed(torch.arange(1, 16))
    distances = torch.cdist(table[tokens[:, -1] - 1], table)
    distances[torch.arange(2), tokens[:, -1] - 1] = torch.inf
    assert torch.equal(nearest, distances.argmin(1) + 1)


def test_counterfactual_examples_are_added_and_labelled_by_the_anchor():
    split = split_from_sequences(cyclic_sequences(20, 15, 10), n_items=15)
    method = CASR({"sampler": "heuristic", "d": 8, "max_len": 6, "epochs": 1, "counterfactual_ratio": 0.5},
                  RunContext(seed=0))
    method.fit(split)
    examples = method.examples(split)
    n_real = len(examples.ends)
    assert len(examples.extra_inputs) == round(0.5 * n_real)
    with torch.no_grad():
        expected = method.anchor.logits(examples.extra_inputs).argmax(-1) + 1
    assert torch.equal(examples.extra_targets, expected)
