"""Intrinsic signals that replace SAC's entropy term (paper Section III-B/C, Eq. 6-9, 12-14).

``Empowerment`` (IMRL). One-step empowerment (k = 1) through an inverse-dynamics model
p_xi(a | s, s'), the variational lower bound of I[a, s' | s] (Mohamed & Rezende 2015):

    Eq. 12:  g(s, a) = E_{P(s'|s,a)}[ log p_xi(a | s', s) - log pi_phi(a | s) ]
    Eq. 14:  J_p(xi) = -E[ log p_xi(a_t | s', s_t) ]            (maximum likelihood)

g takes the place of SAC's -log pi in the value target (Eq. 11) and the policy loss
(Eq. 13). Choices where the paper is ambiguous, each configurable:

- Weights. Eq. 11 and 13 weight g by the constant beta, and Eq. 15 still tunes SAC's
  temperature alpha, which would then weight nothing. We keep both: the -log pi half of
  g is weighted by the tuned alpha, the log p_xi half by beta:
  beta * log p_xi(a | s, s') - alpha * log pi(a | s)   (= alpha * g when beta = alpha).
- s' for a fresh action. The expectation of Eq. 12 is over s' ~ P(.|s, a) for the action
  a ~ pi being evaluated, and the paper states that P is not estimated (model-free). So
  the one sample available is used: the replay transition's s'. log p_xi(a | s, s')
  then scores how well the policy's action explains the observed consequence.
- p_xi is a tanh-Gaussian over the normalised action, the policy's own family, so
  log p_xi and log pi are densities of the same variable.

``TransitionKL`` (IMRL-KL, the "first approach" of Section III-B): high mutual
information between the action and the next state, measured as a KL divergence between
representations. Representations of s' are diagonal Gaussians in standardised units:
q(s' | s, a) (action-conditioned) and q(s' | s) (action-marginal), both fitted by maximum
likelihood on replay. KL(q(s' | s, a) || q(s' | s)) averaged over a ~ pi is I[a, s' | s];
it replaces log p_xi above: beta * KL - alpha * log pi. The paper gives no more detail
than this (its reference [27] is not named in our copy); the Gaussian form is the
"transformation ... information lost" it attributes to this approach.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from imrl.agents.causal import RunningMoments, STD_FLOOR
from imrl.agents.sac import GaussianHead, atanh_clipped, tanh_gaussian_log_prob


class Empowerment(nn.Module):
    def __init__(self, obs_dim: int, action_dim: int, hidden: int, beta: float):
        super().__init__()
        self.inverse = GaussianHead(2 * obs_dim, hidden, action_dim)   # p_xi(a | s, s')
        self.beta = beta

    def forward(self, batch: dict[str, Tensor], action_pi: Tensor, pre_tanh_pi: Tensor, log_pi: Tensor,
                alpha: Tensor) -> tuple[Tensor, Tensor]:
        """(beta * log p_xi(a_pi | s, s') - alpha * log pi(a_pi | s), J_p(xi)) for a minibatch."""
        mean, log_std = self.inverse(torch.cat([batch["obs"], batch["next_obs"]], 1))
        # Eq. 14: maximum likelihood of the replayed action given (s, s').
        inverse_loss = -tanh_gaussian_log_prob(atanh_clipped(batch["action"]), mean, log_std).mean()
        # Eq. 12: xi is held fixed here; the gradient reaches phi through a_pi.
        log_p = tanh_gaussian_log_prob(pre_tanh_pi, mean.detach(), log_std.detach())
        return self.beta * log_p - alpha * log_pi, inverse_loss


def _gaussian_nll(target: Tensor, mean: Tensor, log_std: Tensor) -> Tensor:
    return (0.5 * ((target - mean) * torch.exp(-log_std)).pow(2) + log_std).sum(-1)


class TransitionKL(nn.Module):
    def __init__(self, obs_dim: int, action_dim: int, hidden: int, beta: float):
        super().__init__()
        self.conditioned = GaussianHead(obs_dim + action_dim, hidden, obs_dim)   # q(s' | s, a)
        self.marginal = GaussianHead(obs_dim, hidden, obs_dim)                   # q(s' | s)
        self.moments = RunningMoments(obs_dim)
        self.beta = beta

    def observe(self, batch: dict[str, Tensor]) -> None:
        self.moments.add(batch["obs"])
        self.moments.add(batch["next_obs"])

    def forward(self, batch: dict[str, Tensor], action_pi: Tensor, pre_tanh_pi: Tensor, log_pi: Tensor,
                alpha: Tensor) -> tuple[Tensor, Tensor]:
        mean, std = self.moments.mean_std()
        std = std.clamp(min=STD_FLOOR)
        obs, next_obs = (batch["obs"] - mean) / std, (batch["next_obs"] - mean) / std
        marginal_mean, marginal_log_std = self.marginal(obs)
        fit_loss = (_gaussian_nll(next_obs, *self.conditioned(torch.cat([obs, batch["action"]], 1))).mean()
                    + _gaussian_nll(next_obs, marginal_mean, marginal_log_std).mean())
        # KL(q(s'|s, a_pi) || q(s'|s)) with both models held fixed; gradient through a_pi.
        frozen = {name: p.detach() for name, p in self.conditioned.named_parameters()}
        cond_mean, cond_log_std = torch.func.functional_call(self.conditioned, frozen, (torch.cat([obs, action_pi], 1),))
        m_mean, m_log_std = marginal_mean.detach(), marginal_log_std.detach()
        kl = (m_log_std - cond_log_std
              + 0.5 * ((2 * cond_log_std).exp() + (cond_mean - m_mean).pow(2)) * torch.exp(-2 * m_log_std) - 0.5).sum(-1)
        return self.beta * kl - alpha * log_pi, fit_loss
