"""imrl-bench: reproducible benchmark of RL recommenders (IMRL and baselines).

Data flows one way through the subpackages:
data -> envs -> api/registry -> agents (and baselines/) -> eval -> runs -> report.
"""

__version__ = "0.1.0"
