"""Esper: grow neural networks while they train.

A controller (rule-based or PPO-trained) watches a host network epoch by epoch and plants, trains,
blends, keeps or removes small modules ("seeds") in it. See docs/architecture.md §1 for the parts:
leyline (contracts), kasmina (the growing model), tolaria (host training), tamiyo (deciding),
simic (learning to decide), nissa (telemetry), karn (looking at runs).
"""

__version__ = "0.1.0"
