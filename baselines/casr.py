"""CASR: Counterfactual Data-Augmented Sequential Recommendation (Wang et al., SIGIR 2021),
with STAMP as the recommender, as the IMRL paper uses it ("As CASR only conducts the
augmentation, we select STAMP to make recommendations").

1. Anchor model: a STAMP trained on the real training prefixes.
2. Sampler: a share of the real prefixes is edited at `edits` random positions, by
   - "heuristic": a uniformly random other item;
   - "learned" (the paper's data-oriented sampler, "what would the user have bought next
     had she bought a different item before?"): the item's embedding x_k moves by the
     delta minimising  delta_l2 * ||delta||^2 - CE(anchor(s with x_k + delta), y_hat),
     the small change that turns the anchor away from its current top item y_hat, by
     gradient steps; the edit is the item nearest to x_k + delta other than the original.
3. Labelling: the anchor's top item for the counterfactual sequence is its next item.
4. Target model: a fresh STAMP trained on the real plus the counterfactual examples.
Not implemented: the paper's model-oriented sampler. The share of counterfactual examples
and the delta search settings are ours (the paper varies the former).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from baselines.sequential import PAD, Examples, random_subset
from baselines.stamp import DEFAULTS as STAMP_DEFAULTS
from baselines.stamp import STAMP
from imrl.data.split import Split

DEFAULTS = {
    **STAMP_DEFAULTS,
    "sampler": "learned",          # or "heuristic"
    "counterfactual_ratio": 0.5,   # counterfactual examples per real training example
    "max_counterfactuals": 500_000,
    "edits": 1,                    # items replaced per counterfactual sequence
    "delta_steps": 10,
    "delta_lr": 0.5,
    "delta_l2": 0.1,
}


class CASR(STAMP):
    defaults = DEFAULTS

    def fit(self, split: Split) -> None:
        if self.params["sampler"] not in ("heuristic", "learned"):
            raise ValueError(f"CASR: params.sampler must be 'heuristic' or 'learned', got {self.params['sampler']!r}")
        self.anchor = STAMP({k: v for k, v in self.params.items() if k in STAMP_DEFAULTS}, self.ctx)   # step 1
        self.anchor.fit(split)
        self.anchor.model.eval().requires_grad_(False)
        super().fit(split)                                   # step 4, on examples() below

    def examples(self, split: Split) -> Examples:
        examples = super().examples(split)
        generator = self.ctx.generator(offset=3)
        n = min(round(self.params["counterfactual_ratio"] * len(examples)), self.params["max_counterfactuals"])
        sources = torch.randint(len(examples), (n,), generator=generator, device=self.device)
        made = [], [], []
        for chunk in sources.split(self.params["batch_size"]):
            original, _, users = examples.batch(chunk)
            edited, _ = self.counterfactual(original, generator)                      # step 2
            with torch.no_grad():
                labels = self.anchor.logits(edited).argmax(-1) + 1                     # step 3
            for store, value in zip(made, (edited, labels, users)):
                store.append(value)
        examples.add(*(torch.cat(store) for store in made))
        return examples

    def counterfactual(self, tokens: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """(edited tokens, edited positions): `edits` real positions per row replaced by
        other items; everything else, padding included, unchanged."""
        where = random_subset(tokens != PAD, self.params["edits"], generator)
        originals = tokens[where]
        n_items = self.anchor.model.item_embedding.num_embeddings - 1
        if self.params["sampler"] == "heuristic":
            shift = torch.randint(1, n_items, originals.shape, generator=generator, device=tokens.device)
            replacements = (originals - 1 + shift) % n_items + 1          # uniform over the other items
        else:
            replacements = self.nearest_to_counterfactual(tokens, where)
        edited = tokens.clone()
        edited[where] = replacements
        return edited, where

    def nearest_to_counterfactual(self, tokens: torch.Tensor, where: torch.Tensor) -> torch.Tensor:
        """The data-oriented sampler: the items nearest to x_k + delta at the positions
        `where`, delta found by gradient descent on the objective of the module doc."""
        anchor, hp = self.anchor.model, self.params
        real = tokens != PAD
        x = anchor.embed(tokens)
        current_top = anchor.logits(x, real).argmax(-1)                       # y_hat
        moved = where[..., None].float()
        delta = torch.zeros_like(x, requires_grad=True)
        for _ in range(hp["delta_steps"]):
            with torch.enable_grad():
                logits = anchor.logits(x + moved * delta, real)
                objective = (hp["delta_l2"] * (moved * delta).pow(2).sum((1, 2))
                             - F.cross_entropy(logits, current_top, reduction="none")).sum()
                (gradient,) = torch.autograd.grad(objective, delta)
            delta = (delta - hp["delta_lr"] * gradient).detach().requires_grad_()
        goals = (x + moved * delta)[where]                                    # [n_edits, d]
        table = anchor.embed(torch.arange(1, anchor.item_embedding.num_embeddings, device=tokens.device))
        distances = torch.cdist(goals, table)
        distances[torch.arange(len(goals)), tokens[where] - 1] = torch.inf    # never the original item
        return distances.argmin(-1) + 1
