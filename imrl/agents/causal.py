"""Counterfactual data augmentation with a learned local causal model (paper Section
III-A, Eq. 3-5, Algorithm 1), after Pitis et al., "Counterfactual Data Augmentation using
Locally Factored Dynamics" (NeurIPS 2020, "CoDA").

Composition form. A state is n components (for the offline environment: the N history
slots and the user features), an action m components; ``Layout`` holds their column
ranges. The local causal graph of one transition is bipartite: its input nodes are the
components of (s, a), its output nodes the components of s' and the reward r.

The local causal model (Algorithm 1, ``ind``, lines 11-15; the paper gives no recipe).
Two networks trained on the replay buffer by least squares, in standardised units:

- f(s, a, r) -> s': the mechanism of Eq. 3, s_{t+1} = f(s_t, a_t, U_{t+1}). The realised
  user response r stands in for the noise U_{t+1}: in a recommender it is the click that
  moves the state (the history window advances on hits), so without it the model
  would learn an average of "moved" and "stayed" and see every slot depend on every
  other. Consequence: two transitions are combined only when they carry the same
  response (|r1 - r2| <= reward_tolerance), where f(., ., r) is one mechanism.
- g(s, a) -> r: the reward's own parents.

The agent fits both on the real transitions of the replay minibatch that pass the
threshold of Algorithm 2 line 8 (r >= T): the model is only ever asked about those, and
the shifts of the history window they cause are what it must get right.

Per transition, the Jacobian of each network's output with respect to its (s, a)
inputs is taken at that transition (the local sensitivity); input component i is a
parent of output component j when max over j's dimensions of the L2 norm of the
Jacobian row restricted to i's columns exceeds ``mask_threshold``. Inputs that never
varied in the data are no parents (their weights never received a gradient).

Augmentation (Algorithm 1, lines 1-9): the union of the two transitions' graphs is split
into connected components; any union of whole components is disconnected from the rest
in BOTH graphs (m1 and m2 of line 3), and d is drawn uniformly among those unions,
except the empty and the full one (line 4). The new transition is tau1 with d's (s, a,
s') values taken from tau2 (line 6; the paper's ``s'_g[d] = s'_g[d]`` is read as
``s'_2[d]``). Reward (line 7, R(s_g, a_g)): both transitions carry the same response r,
so the new one does too; all of r's local parents lie in one component, which comes
whole from tau1 or whole from tau2, and either way r is the value that component
produced. Validity (line 8, "if s_g[d], a_g[d], s'_g[d] exists"): the new transition
is kept only if (a) d still is a union of components of the graph at (s_g, a_g), the
check CoDA makes; (b) both transitions agree on termination; (c) (s_g, a_g, s'_g)
lies inside the observation and action spaces; (d) it differs from tau1.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from imrl.agents.sac import MLP

STD_FLOOR = 1e-6   # below it an input counts as constant (never varied: no parent)


@dataclass(frozen=True)
class Layout:
    """Column ranges of the components of the flat state and action vectors."""

    state: tuple[tuple[int, int], ...]    # (start, stop) per state component
    action: tuple[tuple[int, int], ...]   # (start, stop) per action component, in action columns

    @property
    def obs_dim(self) -> int:
        return self.state[-1][1]

    @property
    def action_dim(self) -> int:
        return self.action[-1][1]

    @property
    def n_inputs(self) -> int:      # nodes of (s, a)
        return len(self.state) + len(self.action)

    @property
    def n_outputs(self) -> int:     # nodes of (s', r)
        return len(self.state) + 1

    def input_columns(self) -> list[tuple[int, int]]:
        """Column ranges of the input nodes in the concatenated [s, a] vector."""
        return list(self.state) + [(start + self.obs_dim, stop + self.obs_dim) for start, stop in self.action]

    @staticmethod
    def from_sizes(state_sizes: list[int], action_sizes: list[int]) -> "Layout":
        def ranges(sizes: list[int]) -> tuple[tuple[int, int], ...]:
            bounds = torch.tensor([0, *sizes]).cumsum(0).tolist()
            return tuple(zip(bounds[:-1], bounds[1:]))
        if not state_sizes or not action_sizes or min(state_sizes + action_sizes) < 1:
            raise ValueError(f"component sizes must be positive integers; got state {state_sizes}, action {action_sizes}")
        return Layout(ranges(state_sizes), ranges(action_sizes))


class RunningMoments(nn.Module):
    """Mean and standard deviation of a vector over every transition seen (exact sums in
    float64, so the statistics do not depend on how transitions were batched)."""

    def __init__(self, dim: int):
        super().__init__()
        self.register_buffer("count", torch.zeros((), dtype=torch.float64))
        self.register_buffer("total", torch.zeros(dim, dtype=torch.float64))
        self.register_buffer("total_sq", torch.zeros(dim, dtype=torch.float64))

    def add(self, x: Tensor) -> None:
        x = x.to(torch.float64)
        self.count += x.shape[0]
        self.total += x.sum(0)
        self.total_sq += x.pow(2).sum(0)

    def mean_std(self) -> tuple[Tensor, Tensor]:
        count = self.count.clamp(min=1.0)
        mean = self.total / count
        var = (self.total_sq / count - mean.pow(2)).clamp(min=0.0)
        return mean.float(), var.sqrt().float()


def _jacobian(net: MLP, x: Tensor) -> Tensor:
    """Per-row Jacobian [B, out, in] of a two-hidden-layer ReLU MLP (sac.MLP), exactly:
    W3 diag(h2 > 0) W2 diag(h1 > 0) W1."""
    first, second, last = net[0], net[2], net[4]
    h1 = first(x)
    h2 = second(torch.relu(h1))
    upper = last.weight.unsqueeze(0) * (h2 > 0).unsqueeze(1)                  # [B, out, hidden]
    upper = torch.matmul(upper, second.weight) * (h1 > 0).unsqueeze(1)      # [B, out, hidden]
    return torch.matmul(upper, first.weight)                                 # [B, out, in]


class LocalCausalModel(nn.Module):
    def __init__(self, layout: Layout, hidden: int, mask_threshold: float):
        super().__init__()
        self.layout, self.mask_threshold = layout, mask_threshold
        obs_dim, action_dim = layout.obs_dim, layout.action_dim
        self.next_state = MLP(obs_dim + action_dim + 1, hidden, obs_dim)   # f(s, a, r) -> s'
        self.reward = MLP(obs_dim + action_dim, hidden, 1)                  # g(s, a) -> r
        self.inputs = RunningMoments(obs_dim + action_dim + 1)              # [s, a, r]
        self.outputs = RunningMoments(obs_dim + 1)                          # [s', r]
        self.n_updates = 0
        # Which input columns belong to which input node; the row ranges of the output nodes.
        in_owner = torch.empty(obs_dim + action_dim, dtype=torch.long)
        for node, (start, stop) in enumerate(layout.input_columns()):
            in_owner[start:stop] = node
        self.register_buffer("in_owner", in_owner, persistent=False)
        out_owner = torch.cat([in_owner[:obs_dim], torch.tensor([len(layout.state)])])   # s' components, then r
        self.register_buffer("out_owner", out_owner, persistent=False)

    def observe(self, batch: dict[str, Tensor]) -> None:
        """Update the standardisation statistics with real transitions."""
        self.inputs.add(torch.cat([batch["obs"], batch["action"], batch["reward"][:, None]], 1))
        self.outputs.add(torch.cat([batch["next_obs"], batch["reward"][:, None]], 1))

    def _standardised(self, obs: Tensor, action: Tensor, reward: Tensor) -> tuple[Tensor, Tensor]:
        in_mean, in_std = self.inputs.mean_std()
        x = (torch.cat([obs, action, reward[:, None]], 1) - in_mean) / in_std.clamp(min=STD_FLOOR)
        return x[:, :-1], x   # [s, a] for g, [s, a, r] for f

    def loss(self, batch: dict[str, Tensor]) -> Tensor:
        """Per-transition least squares [B] of f and g on a replay minibatch, in standardised units."""
        state_action, with_reward = self._standardised(batch["obs"], batch["action"], batch["reward"])
        out_mean, out_std = self.outputs.mean_std()
        target = (torch.cat([batch["next_obs"], batch["reward"][:, None]], 1) - out_mean) / out_std.clamp(min=STD_FLOOR)
        prediction = torch.cat([self.next_state(with_reward), self.reward(state_action)], 1)
        return 0.5 * (prediction - target).pow(2).sum(1)

    @torch.no_grad()
    def adjacency(self, obs: Tensor, action: Tensor, reward: Tensor) -> Tensor:
        """Local causal graphs [B, n_inputs, n_outputs] (bool): input node i -> output node j."""
        state_action, with_reward = self._standardised(obs, action, reward)
        _, out_std = self.outputs.mean_std()
        in_std = self.inputs.mean_std()[1][:-1]
        jac = torch.cat([_jacobian(self.next_state, with_reward)[:, :, :-1],   # d s' / d(s, a), r held fixed
                         _jacobian(self.reward, state_action)], 1)             # d r / d(s, a)
        # Rows of constant outputs (std 0) and columns of constant inputs carry no information.
        jac = jac * (out_std >= STD_FLOOR)[None, :, None] * (in_std >= STD_FLOOR)[None, None, :]
        # Squared norm of each Jacobian row restricted to each input node's columns ...
        row_sq = torch.zeros(jac.shape[0], jac.shape[1], self.layout.n_inputs, device=jac.device)
        row_sq.index_add_(2, self.in_owner, jac.pow(2))
        # ... and its largest value over each output node's rows.
        node_sq = torch.zeros(jac.shape[0], self.layout.n_outputs, self.layout.n_inputs, device=jac.device)
        node_sq.scatter_reduce_(1, self.out_owner[None, :, None].expand_as(row_sq), row_sq, "amax")
        return (node_sq.sqrt() > self.mask_threshold).transpose(1, 2)


def _components(adjacency: Tensor) -> Tensor:
    """Connected-component labels [B, V] of bipartite graphs [B, n_in, n_out]: nodes are
    the n_in inputs then the n_out outputs; a label is the smallest node index of its
    component. Label propagation: each node takes the smallest label among itself and its
    neighbours until none changes (rounds: about the graph's diameter; each costs
    n_in x n_out per graph, where closing V x V reachability by squaring costs V^3)."""
    batch, n_in, n_out = adjacency.shape
    no_edge = n_in + n_out   # larger than every label
    labels = torch.arange(n_in + n_out, device=adjacency.device, dtype=torch.int32).expand(batch, -1)
    inputs, outputs = labels[:, :n_in], labels[:, n_in:]
    while True:
        new_outputs = torch.minimum(outputs, torch.where(adjacency, inputs[:, :, None], no_edge).amin(1))
        new_inputs = torch.minimum(inputs, torch.where(adjacency, new_outputs[:, None, :], no_edge).amin(2))
        if torch.equal(new_inputs, inputs) and torch.equal(new_outputs, outputs):
            return torch.cat([inputs, outputs], 1).long()
        inputs, outputs = new_inputs, new_outputs


def sample_swap(adjacency_1: Tensor, adjacency_2: Tensor, generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """Algorithm 1, lines 3-4: the node set d [B, V] (bool) to take from tau2, drawn
    uniformly among the unions of connected components of G1 u G2 other than the empty
    and the full set; and whether such a set exists [B]."""
    labels = _components(adjacency_1 | adjacency_2)
    batch, nodes = labels.shape
    node_ids = torch.arange(nodes, device=labels.device)
    is_root = labels == node_ids                           # one root node per component
    rank = (is_root.long().cumsum(1) - 1).gather(1, labels)  # component index of every node
    n_components = is_root.sum(1)
    proper_subsets = (2 ** n_components.clamp(max=62).double()) - 2
    draw = torch.rand(batch, generator=generator, device=labels.device, dtype=torch.float64)
    subset = (draw * proper_subsets).floor().long() + 1    # a bit mask in [1, 2^k - 2]
    chosen = ((subset[:, None] >> rank) & 1).bool()
    return chosen, n_components >= 2


def is_union_of_components(adjacency: Tensor, chosen: Tensor) -> Tensor:
    """[B] True where no edge of the graphs [B, n_in, n_out] crosses between the chosen
    node set and the rest."""
    n_in = adjacency.shape[1]
    crossing = chosen[:, :n_in, None] != chosen[:, None, n_in:]
    return ~(adjacency & crossing).any((1, 2))


def swap(model: "LocalCausalModel", first: dict[str, Tensor], second: dict[str, Tensor],
         chosen: Tensor) -> dict[str, Tensor]:
    """Algorithm 1, lines 5-7: tau1 with the chosen nodes' values taken from tau2 (the
    reward is tau1's, equal to tau2's: see the module docstring)."""
    obs_dim, n_in = model.layout.obs_dim, model.layout.n_inputs
    state_node, action_node = model.in_owner[:obs_dim], model.in_owner[obs_dim:]   # node of every column
    return {"obs": torch.where(chosen[:, state_node], second["obs"], first["obs"]),
            "action": torch.where(chosen[:, action_node], second["action"], first["action"]),
            "reward": first["reward"],
            "next_obs": torch.where(chosen[:, n_in + state_node], second["next_obs"], first["next_obs"]),
            "terminated": first["terminated"]}


@dataclass
class AugmentationResult:
    transitions: dict[str, Tensor]   # the valid new transitions (to append to D)
    proposed: int                    # pairs that had a swappable set
    accepted: int


def augment(model: LocalCausalModel, first: dict[str, Tensor], second: dict[str, Tensor],
            obs_bounds: tuple[Tensor, Tensor], generator: torch.Generator, reward_tolerance: float) -> AugmentationResult:
    """Algorithm 1 for a batch of pairs (tau1[i], tau2[i])."""
    graph_1 = model.adjacency(first["obs"], first["action"], first["reward"])       # line 3: ind(s1, a1)
    graph_2 = model.adjacency(second["obs"], second["action"], second["reward"])    #         ind(s2, a2)
    chosen, exists = sample_swap(graph_1, graph_2, generator)                        # line 4
    exists &= (first["reward"] - second["reward"]).abs() <= reward_tolerance        # one mechanism f(., ., r)
    new = swap(model, first, second, chosen)                                         # lines 5-7
    # Line 8: keep tau_g only if it exists.
    graph_new = model.adjacency(new["obs"], new["action"], new["reward"])
    low, high = obs_bounds
    inside = ((new["obs"] >= low) & (new["obs"] <= high) & (new["next_obs"] >= low) & (new["next_obs"] <= high)).all(1)
    inside &= (new["action"].abs() <= 1.0).all(1)
    changed = ((new["obs"] != first["obs"]).any(1) | (new["action"] != first["action"]).any(1)
               | (new["next_obs"] != first["next_obs"]).any(1))
    valid = (exists & is_union_of_components(graph_new, chosen)
             & (first["terminated"] == second["terminated"]) & inside & changed)
    kept = {name: value[valid] for name, value in new.items()}
    return AugmentationResult(kept, int(exists.sum()), int(valid.sum()))
