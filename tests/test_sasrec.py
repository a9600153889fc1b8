"""SASRec: what would break silently."""

import torch

from baselines.sasrec import SASRec, SASRecNet, UnseenItemSampler
from baselines.sequential import PAD
from imrl.api import RunContext
from tests.supervised_helpers import cyclic_sequences, split_from_sequences


def eval_net(n_items=20, max_len=8):
    torch.manual_seed(0)
    return SASRecNet(n_items, max_len, d=16, n_blocks=2, n_heads=2, dropout=0.2).eval()


def test_no_position_sees_the_future():
    net = eval_net()
    tokens = torch.tensor([[PAD, PAD, 3, 7, 1, 9, 4, 2]])
    for t in range(2, 8):
        perturbed = tokens.clone()
        perturbed[0, t] = 11
        before, after = net(tokens), net(perturbed)
        assert torch.equal(before[0, :t], after[0, :t]), f"position < {t} changed"
        assert not torch.allclose(before[0, t], after[0, t])


def test_padding_is_never_seen_nor_scored():
    net = eval_net()
    tokens = torch.tensor([[PAD, PAD, PAD, 5, 6, 7, 8, 9]])
    hidden = net(tokens)
    with torch.no_grad():
        net.item_embedding.weight[PAD] = 100.0           # whatever padding embeds to
    assert torch.equal(hidden[0, 3:], net(tokens)[0, 3:])
    scores = net.item_scores(hidden[:, -1])
    assert scores.shape == (1, 20)                        # items only: token 0 has no column
    assert torch.allclose(scores, hidden[:, -1] @ net.item_embedding.weight[1:].T)


def test_negatives_are_never_padding_nor_consumed_items():
    split = split_from_sequences([list(range(12)) + [12, 13, 14, 15], [0, 1, 2, 3]], n_items=16)
    sampler = UnseenItemSampler(split, torch.device("cpu"), torch.Generator().manual_seed(0))
    negatives = sampler.sample(torch.tensor([0, 1]), (2, 500))
    assert (negatives[0] - 1 >= 12).all()                 # user 0 trained on items 0..11
    assert (negatives[1] >= 1).all() and ((negatives[1] - 1) >= 0).all()


def test_both_losses_learn_a_cycle():
    split = split_from_sequences(cyclic_sequences(40, 20, 10), n_items=20)
    for loss in ("bce", "ce"):
        method = SASRec({"loss": loss, "d": 16, "max_len": 8, "epochs": 10, "batch_size": 8, "lr": 0.01,
                         "valid_metric": "recall@1"}, RunContext(seed=0))
        method.fit(split)
        assert max(row["recall@1"] for row in method.train_log) > 0.7, loss   # chance: 1/18
