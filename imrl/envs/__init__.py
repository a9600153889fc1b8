"""Environments: the offline environment built from a dataset split (``imrl.envs.offline``)
and, later, the online simulators."""
