"""Our Soft Actor-Critic computes exactly the paper's gradients: the fused update of
``SoftActorCritic.losses`` (one backward over the sum of the losses, twin Q heads as one
batched network) gives every parameter the gradient that a straightforward SAC gives it,
one loss and one backward pass per network (Eq. 10, 11, 13, 15; Eq. 12 and 14 with
empowerment)."""

from __future__ import annotations

import copy
import math

import pytest
import torch

from imrl.agents.empowerment import Empowerment
from imrl.agents.sac import FusedAdam, SACConfig, SoftActorCritic, atanh_clipped, tanh_gaussian_log_prob

OBS_DIM, ACTION_DIM, BATCH = 7, 3, 64


def q_head(sac: SoftActorCritic, head: int, obs: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
    """Q head `head` as an ordinary MLP on cat(s, a), read from the twin network's weights."""
    q = sac.q
    first = torch.cat([q.obs_weight[head], q.action_weight[head]], 0)
    h = torch.relu(torch.cat([obs, action], 1) @ first + q.first_bias[head])
    h = torch.relu(h @ q.hidden_weight[head] + q.hidden_bias[head])
    return h @ q.out_weight[head, 0] + q.out_bias[head, 0]


def reference_gradients(sac: SoftActorCritic, signal: Empowerment | None, batch: dict[str, torch.Tensor],
                        generator: torch.Generator) -> dict[str, torch.Tensor]:
    """SAC as written in the paper, each loss differentiated in its own network's parameters."""
    obs, action, reward, next_obs, terminated = (batch[k] for k in ("obs", "action", "reward", "next_obs", "terminated"))
    mean_pi, log_std_pi = sac.policy(obs)   # the policy's sample, written out: u = mean + std * noise
    noise = torch.randn(mean_pi.shape, generator=generator)
    pre_tanh_pi = mean_pi + noise * log_std_pi.exp()
    action_pi, log_pi = torch.tanh(pre_tanh_pi), tanh_gaussian_log_prob(pre_tanh_pi, mean_pi, log_std_pi)
    alpha = sac.log_alpha.exp().detach()
    if signal is None:
        bonus = -alpha * log_pi
    else:
        mean, log_std = signal.inverse(torch.cat([obs, next_obs], 1))
        log_p = tanh_gaussian_log_prob(pre_tanh_pi, mean.detach(), log_std.detach())
        bonus = signal.beta * log_p - alpha * log_pi
        inverse_loss = -tanh_gaussian_log_prob(atanh_clipped(action), mean, log_std).mean()   # Eq. 14
    with torch.no_grad():
        target = reward + sac.config.gamma * (1 - terminated) * sac.value_target(next_obs).squeeze(-1)
    q_loss = sum(0.5 * (q_head(sac, k, obs, action) - target).pow(2).mean() for k in range(2))        # Eq. 10
    q_pi = torch.minimum(q_head(sac, 0, obs, action_pi), q_head(sac, 1, obs, action_pi))
    value_loss = 0.5 * (sac.value(obs).squeeze(-1) - (q_pi + bonus).detach()).pow(2).mean()          # Eq. 11
    policy_loss = -(q_pi + bonus).mean()                                                            # Eq. 13
    alpha_loss = -(sac.log_alpha * (log_pi + sac.target_entropy).detach()).mean()                   # Eq. 15

    gradients = {}
    for prefix, loss, module in [("q.", q_loss, sac.q), ("value.", value_loss, sac.value),
                                 ("policy.", policy_loss, sac.policy)]:
        names, params = zip(*module.named_parameters())
        for name, grad in zip(names, torch.autograd.grad(loss, params, retain_graph=True)):
            gradients[prefix + name] = grad
    gradients["log_alpha"] = torch.autograd.grad(alpha_loss, sac.log_alpha)[0]
    if signal is not None:
        names, params = zip(*signal.named_parameters())
        for name, grad in zip(names, torch.autograd.grad(inverse_loss, params)):
            gradients["signal." + name] = grad
    return gradients



def test_fused_adam_steps_exactly_as_torch_adam():
    """FusedAdam calls torch.optim.Adam(fused=True)'s kernel without its bookkeeping: the same
    parameters after every step, including a parameter that gets no gradient on some steps
    (it must keep its state and step count, as torch's does)."""
    torch.manual_seed(0)
    ours = [torch.nn.Parameter(torch.randn(5, 3)), torch.nn.Parameter(torch.randn(4)), torch.nn.Parameter(torch.randn(()))]
    theirs = [torch.nn.Parameter(p.detach().clone()) for p in ours]
    ours_adam, theirs_adam = FusedAdam(ours, lr=0.01), torch.optim.Adam(theirs, lr=0.01, fused=True)
    for step in range(12):
        ours_adam.zero_grad()
        theirs_adam.zero_grad()
        for params in (ours, theirs):
            loss = (params[0].sin() ** 2).sum() + params[2] ** 2 * (step + 1)
            if step % 3 == 0:   # the second parameter only now and then
                loss = loss + (params[1] ** 3).sum()
            loss.backward()
        ours_adam.step()
        theirs_adam.step()
        for mine, reference in zip(ours, theirs):
            assert torch.equal(mine, reference), f"step {step}: parameters differ"
    assert [float(s) for s in ours_adam.steps] == [12.0, 4.0, 12.0]

@pytest.mark.parametrize("intrinsic", ["entropy", "empowerment"])
def test_fused_update_matches_reference_gradients(intrinsic):
    torch.manual_seed(0)
    sac = SoftActorCritic(OBS_DIM, ACTION_DIM, SACConfig(hidden=32))
    signal = Empowerment(OBS_DIM, ACTION_DIM, hidden=32, beta=0.4) if intrinsic == "empowerment" else None
    with torch.no_grad():
        sac.log_alpha.fill_(math.log(0.3))
        for target in sac.value_target.parameters():   # V' apart from V, so a mix-up would show
            target.add_(0.1 * torch.randn_like(target))
    data = torch.Generator().manual_seed(1)
    batch = {"obs": torch.randn(BATCH, OBS_DIM, generator=data),
             "action": torch.rand(BATCH, ACTION_DIM, generator=data) * 2 - 1,
             "reward": torch.rand(BATCH, generator=data),
             "next_obs": torch.randn(BATCH, OBS_DIM, generator=data),
             "terminated": (torch.rand(BATCH, generator=data) < 0.2).float()}
    reference_sac, reference_signal = copy.deepcopy(sac), copy.deepcopy(signal)
    expected = reference_gradients(reference_sac, reference_signal, batch, torch.Generator().manual_seed(2))

    total, _ = sac.losses(batch, torch.Generator().manual_seed(2), signal)
    total.backward()
    fused = {name: p.grad for name, p in sac.named_parameters() if p.requires_grad}
    if signal is not None:
        fused.update({"signal." + name: p.grad for name, p in signal.named_parameters()})
    assert set(fused) == set(expected)
    for name, grad in expected.items():
        assert fused[name] is not None, f"{name} received no gradient"
        torch.testing.assert_close(fused[name], grad, rtol=1e-4, atol=1e-6, msg=lambda m: f"{name}: {m}")
    assert all(p.grad is None for p in sac.value_target.parameters()), "the averaged target V' must not be trained"
