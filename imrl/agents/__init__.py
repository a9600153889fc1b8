"""IMRL and its parts: the Soft Actor-Critic core (sac), the intrinsic signals
(empowerment), the local causal model and counterfactual augmentation (causal), and
Algorithm 2 with the adaptive threshold (imrl), which the registry names imrl, imrl-e,
imrl-a, imrl-kl and sac."""
