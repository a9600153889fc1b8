"""Baselines behind the same interfaces as IMRL (imrl.api): one module per method."""
