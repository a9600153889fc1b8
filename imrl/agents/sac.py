"""Soft Actor-Critic, the base learner of IMRL (paper Section III-C, Eq. 10, 11, 13, 15).

This is SAC as the IMRL paper writes it: a state-value network V_psi with an
exponentially averaged copy V_psi' (Haarnoja et al. 2018a), soft Q networks, a
tanh-Gaussian policy and the automatic temperature of Haarnoja et al. 2018b (Eq. 15).
Choice beyond the paper: the Q network is twin (two heads, the minimum is used), as
modern SAC does (Fujimoto et al. 2018); the paper names one Q_theta.

Read top to bottom: the networks, the replay buffer, then ``SoftActorCritic.losses``,
whose lines follow Algorithm 2's gradient step (lines 13-19). Actions are handled in
the policy's normalised box [-1, 1]^d; the agent maps them to the environment's bounds.

The intrinsic term. Plain SAC puts the entropy term -alpha * log pi(a|s) into the value
target (Eq. 11) and the policy loss (Eq. 13). IMRL replaces it by an intrinsic signal
(see imrl/agents/empowerment.py); ``update`` takes that signal as a callable so this
file stays SAC and nothing else.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.optim.adam import adam

LOG_STD_MIN, LOG_STD_MAX = -20.0, 2.0   # the usual SAC clamp of the policy's log std
HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)


class MLP(nn.Sequential):
    """Two hidden ReLU layers of `hidden` units (the paper: hidden 256). The forward pass
    calls the layers' functions, not the modules (a module call costs more than a small
    layer's arithmetic); the ReLUs work in place (a Linear's backward needs its input,
    never its output)."""

    def __init__(self, in_dim: int, hidden: int, out_dim: int):
        super().__init__(nn.Linear(in_dim, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, hidden),
                         nn.ReLU(inplace=True), nn.Linear(hidden, out_dim))

    def forward(self, x: Tensor) -> Tensor:
        first, _, second, _, last = self._modules.values()
        x = F.linear(x, first.weight, first.bias).relu_()
        x = F.linear(x, second.weight, second.bias).relu_()
        return F.linear(x, last.weight, last.bias)


class _TwinQForward(torch.autograd.Function):
    """Both Q heads on the replayed actions a (Eq. 10 trains them there) and the minimum of
    the heads on the policy's actions a_pi (Eq. 11 and 13 read it; Eq. 13 differentiates it
    in a_pi only), differentiated by hand. Per head k and row:
        x = relu(s W1s_k + a W1a_k + b1_k),  h = relu(x W2_k + b2_k),  q = h . w3_k + b3_k.
    One product projects s for both sets of rows and one gives layer 2 for all rows
    (faster on a CPU than products of half the rows). The weights take their gradient
    from the replayed rows only, and a_pi's gradient goes back through each row's minimum
    head only (the other head's is zero: skipping it saves a quarter of the layer-2
    backward). tests/test_sac.py checks every gradient against plain autograd."""

    @staticmethod
    def forward(ctx, obs: Tensor, action: Tensor, policy_action: Tensor, obs_weight: Tensor, action_weight: Tensor,
                first_bias: Tensor, hidden_weight: Tensor, hidden_bias: Tensor, out_weight: Tensor, out_bias: Tensor):
        heads, batch = len(obs_weight), len(obs)
        projected = torch.baddbmm(first_bias, obs.expand(heads, -1, -1), obs_weight)             # [heads, batch, hidden]
        x = torch.matmul(torch.cat([action, policy_action]), action_weight)                       # [heads, 2 batch, hidden]
        x.view(heads, 2, batch, -1).add_(projected.unsqueeze(1)).relu_()
        h = torch.baddbmm(hidden_bias, x, hidden_weight).relu_()
        q = torch.baddbmm(out_bias.unsqueeze(-1), h, out_weight.transpose(1, 2)).squeeze(-1)      # [heads, 2 batch]
        q_pi, head = q[:, batch:].min(0)
        ctx.save_for_backward(obs, action, x, h, head, action_weight, hidden_weight, out_weight)
        return q[:, :batch], q_pi

    @staticmethod
    def backward(ctx, grad_q: Tensor, grad_q_pi: Tensor):
        obs, action, x, h, head, action_weight, hidden_weight, out_weight = ctx.saved_tensors
        heads, batch = len(hidden_weight), len(obs)
        relu_backward = torch.ops.aten.threshold_backward   # far faster on a CPU than torch.where
        # Replayed rows, both heads: every weight's gradient.
        grad_h = relu_backward(grad_q.unsqueeze(-1) * out_weight, h[:, :batch], 0.0)             # [heads, batch, hidden]
        grad_x = relu_backward(torch.bmm(grad_h, hidden_weight.transpose(1, 2)), x[:, :batch], 0.0)
        weight_grads = (torch.bmm(obs.T.expand(heads, -1, -1), grad_x), torch.bmm(action.T.expand(heads, -1, -1), grad_x),
                        grad_x.sum(1, keepdim=True), torch.bmm(x[:, :batch].transpose(1, 2), grad_h),
                        grad_h.sum(1, keepdim=True), torch.bmm(grad_q.unsqueeze(1), h[:, :batch]),
                        grad_q.sum(1, keepdim=True))
        # The policy's rows, each through its minimum head: a_pi's gradient.
        grad_policy_action = grad_q_pi.new_zeros(batch, action_weight.shape[1])
        for k in range(heads):
            rows = (head == k).nonzero().squeeze(1)   # index_select: a far faster gather than indexing
            grad_h_k = relu_backward(grad_q_pi.index_select(0, rows).unsqueeze(1) * out_weight[k],
                                     h[k, batch:].index_select(0, rows), 0.0)                      # [rows, hidden]
            grad_x_k = relu_backward(grad_h_k @ hidden_weight[k].T, x[k, batch:].index_select(0, rows), 0.0)
            grad_policy_action.index_copy_(0, rows, grad_x_k @ action_weight[k].T)
        return (None, None, grad_policy_action, *weight_grads)


class TwinQ(nn.Module):
    """Two Q networks evaluated as one batched network (weights [2, in, out]): one
    matrix product per layer for both heads. The first layer is split into its state
    and action halves, so that Q(s, a) and Q(s, a_pi) share the projection of s; their
    later layers are one product (``_TwinQForward``)."""

    def __init__(self, obs_dim: int, action_dim: int, hidden: int, heads: int = 2):
        super().__init__()
        def uniform(fan_in: int, *shape: int) -> nn.Parameter:
            bound = 1.0 / math.sqrt(fan_in)   # nn.Linear's default initialisation range
            return nn.Parameter(torch.empty(heads, *shape).uniform_(-bound, bound))
        fan_in = obs_dim + action_dim
        self.obs_weight, self.action_weight = uniform(fan_in, obs_dim, hidden), uniform(fan_in, action_dim, hidden)
        self.first_bias = uniform(fan_in, 1, hidden)
        self.hidden_weight, self.hidden_bias = uniform(hidden, hidden, hidden), uniform(hidden, 1, hidden)
        self.out_weight, self.out_bias = uniform(hidden, 1, hidden), uniform(hidden, 1)

    def forward(self, obs: Tensor, action: Tensor, policy_action: Tensor) -> tuple[Tensor, Tensor]:
        """(Q(s, a) [heads, batch], min over heads of Q(s, a_pi) [batch]); the second's
        gradient reaches a_pi and not the weights (the policy loss differentiates Q in the
        action only)."""
        return _TwinQForward.apply(obs, action, policy_action, self.obs_weight, self.action_weight, self.first_bias,
                                   self.hidden_weight, self.hidden_bias, self.out_weight, self.out_bias)


def tanh_squash_log_det(pre_tanh: Tensor) -> Tensor:
    """log(1 - tanh(u)^2) per dimension, in the stable form 2 * (log 2 - u - softplus(-2u))."""
    return 2.0 * (math.log(2.0) - pre_tanh - F.softplus(-2.0 * pre_tanh))


def tanh_gaussian_log_prob(pre_tanh: Tensor, mean: Tensor, log_std: Tensor) -> Tensor:
    """log density of a = tanh(u), u ~ N(mean, exp(log_std)^2), summed over action dims."""
    z = (pre_tanh - mean) * torch.exp(-log_std)
    gaussian = -0.5 * z.pow(2) - log_std - HALF_LOG_2PI
    return (gaussian - tanh_squash_log_det(pre_tanh)).sum(-1)


def atanh_clipped(action: Tensor, eps: float = 1e-6) -> Tensor:
    """Pre-tanh value of a stored action (clipped away from +-1, where atanh is infinite)."""
    return torch.atanh(action.clamp(-1.0 + eps, 1.0 - eps))


class GaussianHead(nn.Module):
    """An MLP that outputs the mean and clamped log std of a diagonal Gaussian; the
    policy and the inverse-dynamics model (empowerment.py) share this form."""

    def __init__(self, in_dim: int, hidden: int, out_dim: int):
        super().__init__()
        self.net = MLP(in_dim, hidden, 2 * out_dim)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        mean, log_std = self.net(x).chunk(2, dim=-1)
        return mean, log_std.clamp(LOG_STD_MIN, LOG_STD_MAX)


class _TanhGaussianSample(torch.autograd.Function):
    """(a, u, log pi(a)) for u = mean + std * noise, a = tanh(u), differentiated by hand
    (a dozen small operations fewer for autograd to record and replay). u's standardised
    value is the noise itself, so log N(u; mean, std) = -noise^2 / 2 - log std - log
    sqrt(2 pi) (``tanh_gaussian_log_prob``, whose gradient in mean and log std through u
    is the same). With d log(1 - tanh(u)^2) / du = -2a:
        dL/du = dL/da (1 - a^2) + dL/du (direct) + 2a dL/dlog pi
        dL/dmean = dL/du,   dL/dlog std = dL/du * std * noise - dL/dlog pi."""

    @staticmethod
    def forward(ctx, mean: Tensor, log_std: Tensor, noise: Tensor):
        std_noise = log_std.exp().mul_(noise)
        pre_tanh = mean + std_noise
        action = torch.tanh(pre_tanh)
        log_prob = (0.5 * noise.pow(2) + HALF_LOG_2PI + log_std + tanh_squash_log_det(pre_tanh)).sum(-1).neg_()
        ctx.save_for_backward(action, std_noise)
        return action, pre_tanh, log_prob

    @staticmethod
    def backward(ctx, grad_action: Tensor, grad_pre_tanh: Tensor, grad_log_prob: Tensor):
        action, std_noise = ctx.saved_tensors
        grad_log_prob = grad_log_prob.unsqueeze(-1)
        grad_u = torch.addcmul(grad_pre_tanh, grad_action, 1.0 - action.square()).addcmul_(action, grad_log_prob, value=2.0)
        return grad_u, grad_u * std_noise - grad_log_prob, None


class TanhGaussianPolicy(GaussianHead):
    """pi_phi(a|s): a = tanh(u), u ~ N(mu_phi(s), sigma_phi(s)^2)."""

    def sample(self, obs: Tensor, generator: torch.Generator) -> tuple[Tensor, Tensor, Tensor]:
        """Reparameterised sample: (action, pre-tanh u, log pi(action|obs))."""
        mean, log_std = self(obs)
        noise = torch.randn(mean.shape, generator=generator, device=mean.device, dtype=mean.dtype)
        return _TanhGaussianSample.apply(mean, log_std, noise)

    def deterministic(self, obs: Tensor) -> Tensor:
        """The mean action tanh(mu_phi(s)), used to recommend at test time."""
        return torch.tanh(self(obs)[0])


class ReplayBuffer:
    """Replay buffer D of preallocated tensors on the run's device: one [rows, width]
    tensor whose columns hold each field, so a minibatch is one gather. Storage starts
    small and doubles when full (a short run does not reserve 1e6 rows), up to
    `capacity`; then it is a ring that overwrites the oldest transitions. Besides the
    transition, ``real`` marks environment transitions (1) apart from generated ones (0)."""

    SCALARS = ("reward", "terminated", "real")

    def __init__(self, obs_dim: int, action_dim: int, capacity: int, device: torch.device, initial: int = 4096):
        if capacity < 1:
            raise ValueError(f"buffer_size must be >= 1, got {capacity}")
        widths = {"obs": obs_dim, "action": action_dim, "reward": 1, "next_obs": obs_dim, "terminated": 1, "real": 1}
        bounds = torch.tensor([0, *widths.values()]).cumsum(0).tolist()
        self.columns = {name: (start, stop) for name, start, stop in zip(widths, bounds[:-1], bounds[1:])}
        self.capacity, self.device = int(capacity), device
        self.size = 0       # rows filled
        self.cursor = 0     # next row to write
        self.added = 0      # transitions ever added (diagnostics)
        self.data = torch.zeros(min(self.capacity, initial), bounds[-1], device=device)

    def _fields(self, packed: Tensor) -> dict[str, Tensor]:
        """Views of packed rows by field (scalar fields as 1-d)."""
        return {name: packed[:, start] if name in self.SCALARS else packed[:, start:stop]
                for name, (start, stop) in self.columns.items()}

    @property
    def storage(self) -> dict[str, Tensor]:
        """Every allocated row, by field (rows past ``size`` are empty)."""
        return self._fields(self.data)

    def rows(self, index: Tensor) -> dict[str, Tensor]:
        return self._fields(self.data.index_select(0, index))   # index_select: a faster gather than data[index]

    def add(self, batch: dict[str, Tensor], real: bool = True) -> None:
        """Append a batch of transitions {obs, action (normalised to [-1, 1]), reward,
        next_obs, terminated}."""
        n = batch["obs"].shape[0]
        if n == 0:
            return
        if self.size + n > len(self.data) and len(self.data) < self.capacity:
            rows = len(self.data)
            while self.size + n > rows and rows < self.capacity:
                rows = min(self.capacity, 2 * rows)
            grown = torch.zeros(rows, self.data.shape[1], device=self.device)
            grown[: self.size] = self.data[: self.size]
            self.data = grown
        packed = torch.empty(n, self.data.shape[1], device=self.device)
        for name, (start, stop) in self.columns.items():
            value = torch.full((n,), float(real)) if name == "real" else batch[name]
            packed[:, start:stop] = value.to(self.device, torch.float32).reshape(n, stop - start)
        index = (self.cursor + torch.arange(n, device=self.device)) % self.capacity
        self.data[index] = packed
        self.cursor = (self.cursor + n) % self.capacity
        self.size = min(self.size + n, self.capacity)
        self.added += n

    def __getstate__(self) -> dict[str, Any]:
        # A checkpoint (imrl/checkpoint.py) stores the filled rows only (a copy: torch.save
        # of a view would store the whole allocation); the rest is re-allocated on load.
        return {**vars(self), "data": self.data[: self.size].clone(), "allocated": len(self.data)}

    def __setstate__(self, state: dict[str, Any]) -> None:
        state = dict(state)
        filled, allocated = state.pop("data"), state.pop("allocated")
        vars(self).update(state)
        self.data = filled.new_zeros(allocated, filled.shape[1])
        self.data[: self.size] = filled


@dataclass(frozen=True)
class SACConfig:
    hidden: int = 256            # paper: 256 units for actor and critic
    lr: float = 3e-4             # paper: 0.0003 (every network and the temperature)
    gamma: float = 0.99          # paper: 0.99
    tau: float = 0.005           # lambda_psi' of psi' <- lambda psi + (1 - lambda) psi' (paper gives no value)
    batch_size: int = 256
    buffer_size: int = 1_000_000  # paper: 1e6
    init_alpha: float = 1.0
    target_entropy: float | None = None   # None: -action_dim (Haarnoja et al. 2018b)

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> "SACConfig":
        known = {name: params[name] for name in cls.__dataclass_fields__ if name in params}
        return cls(**known)


#: intrinsic(batch, action_pi, pre_tanh_pi, log_pi, alpha) -> (per-sample term replacing
#: -alpha * log pi in Eq. 11 and 13, extra loss of the signal's own models).
IntrinsicTerm = Callable[[dict[str, Tensor], Tensor, Tensor, Tensor, Tensor], tuple[Tensor, Tensor]]


class SoftActorCritic(nn.Module):
    def __init__(self, obs_dim: int, action_dim: int, config: SACConfig):
        super().__init__()
        self.config = config
        self.q = TwinQ(obs_dim, action_dim, config.hidden)                    # Q_theta
        self.value = MLP(obs_dim, config.hidden, 1)                            # V_psi
        self.value_target = MLP(obs_dim, config.hidden, 1)                     # V_psi'
        self.value_target.load_state_dict(self.value.state_dict())
        self.value_target.requires_grad_(False)
        self.policy = TanhGaussianPolicy(obs_dim, config.hidden, action_dim)  # pi_phi
        self.log_alpha = nn.Parameter(torch.tensor(math.log(config.init_alpha)))
        self.target_entropy = -float(action_dim) if config.target_entropy is None else config.target_entropy

    def losses(self, batch: dict[str, Tensor], generator: torch.Generator,
               intrinsic: IntrinsicTerm | None = None) -> tuple[Tensor, dict[str, Tensor]]:
        """The sum of Algorithm 2's losses (lines 14-18) on one minibatch, each touching only
        its own parameters, so one backward pass gives every gradient."""
        obs, action, reward = batch["obs"], batch["action"], batch["reward"]
        next_obs, terminated = batch["next_obs"], batch["terminated"]
        gamma = self.config.gamma

        action_pi, pre_tanh_pi, log_pi = self.policy.sample(obs, generator)   # a_t ~ pi_phi(.|s_t)
        alpha = self.log_alpha.exp().detach()
        if intrinsic is None:
            bonus, signal_loss = -alpha * log_pi, None   # plain SAC entropy term
        else:
            bonus, signal_loss = intrinsic(batch, action_pi, pre_tanh_pi, log_pi, alpha)
        q_data, q_pi = self.q(obs, action, action_pi)   # q_pi: the min of the twin heads

        # Eq. 10: J_Q = E[(Q_theta(s,a) - (r + gamma * V_psi'(s')))^2]  (V_psi' = the averaged target)
        with torch.no_grad():
            q_target = reward + gamma * (1.0 - terminated) * self.value_target(next_obs).squeeze(-1)
        q_loss = 0.5 * len(q_data) * F.mse_loss(q_data, q_target.expand_as(q_data))   # summed over the twin heads
        # Eq. 11: J_V = E[(V_psi(s) - E_{a~pi}[Q_theta(s,a) + bonus])^2]  (bonus: -alpha log pi, or beta g)
        value_target = (q_pi + bonus).detach()
        value = self.value(obs).squeeze(-1)
        value_loss = 0.5 * F.mse_loss(value, value_target)
        # Eq. 13: J_pi = -E[Q_theta(s,a) + bonus], a = tanh(mu + sigma * eps) reparameterised
        policy_loss = -(q_pi + bonus).mean()
        # Eq. 15: J(alpha) = -E[alpha * (log pi(a|s) + H_target)], on log alpha
        alpha_loss = -self.log_alpha * (log_pi.detach().mean() + self.target_entropy)

        total = q_loss + value_loss + policy_loss + alpha_loss
        stats = {"q_loss": q_loss, "value_loss": value_loss, "policy_loss": policy_loss,
                 "alpha": alpha, "entropy": -log_pi.mean(), "value_target": value_target.mean()}
        if signal_loss is not None:
            total, stats["signal_loss"] = total + signal_loss, signal_loss
        stats = {name: value.detach() for name, value in stats.items()}
        return total, stats

    @torch.no_grad()
    def update_value_target(self) -> None:
        """psi' <- lambda * psi + (1 - lambda) * psi' (Section III-C, after Eq. 15)."""
        target, online = list(self.value_target.parameters()), list(self.value.parameters())
        torch._foreach_lerp_(target, online, self.config.tau)


class FusedAdam:
    """Adam (Kingma & Ba 2015; torch's defaults: betas 0.9, 0.999, eps 1e-8) over a fixed list
    of parameters, stepped by torch's fused kernel through its functional form
    (``torch.optim.adam.adam``, fused=True): the kernel ``torch.optim.Adam(fused=True)``
    runs, so the numbers are the same (tests/test_sac.py checks them bit for bit), without
    ``Adam.step``'s per-call bookkeeping over each parameter (hooks, state look-ups, checks),
    about 3% of a SAC update at hidden 256 on a CPU (paired timings of the two optimisers on
    bench/sac.py's update; the bench itself times only this one). One Adam over all
    parameters: the losses touch disjoint parameters, so this is the same as one Adam per
    network at the same learning rate."""

    BETAS, EPS = (0.9, 0.999), 1e-8

    def __init__(self, params: list[nn.Parameter], lr: float):
        self.params, self.lr = list(params), float(lr)
        self.exp_avgs = [torch.zeros_like(p, memory_format=torch.preserve_format) for p in self.params]
        self.exp_avg_sqs = [torch.zeros_like(p, memory_format=torch.preserve_format) for p in self.params]
        self.steps = [torch.zeros((), device=p.device) for p in self.params]   # per parameter, as torch keeps them

    def zero_grad(self) -> None:
        for param in self.params:
            param.grad = None

    @torch.no_grad()
    def step(self) -> None:
        live = [i for i, p in enumerate(self.params) if p.grad is not None]   # as torch: no gradient, no step
        if live:
            params = [self.params[i] for i in live]
            adam(params, [p.grad for p in params], [self.exp_avgs[i] for i in live],
                 [self.exp_avg_sqs[i] for i in live], [], [self.steps[i] for i in live], fused=True, amsgrad=False,
                 beta1=self.BETAS[0], beta2=self.BETAS[1], lr=self.lr, weight_decay=0.0, eps=self.EPS, maximize=False)
