"""A policy network far from uniform, shared by the tamiyo tests.

Heads are initialised at gain 0.01, so a fresh network's logits are all near zero and would hide
a wrong mask, a wrong log-prob or a broken equivariance; scaling the heads makes them O(1)-O(10).
"""

from __future__ import annotations

import torch

from esper.tamiyo.policy_network import PolicyNetwork

HEAD_SCALE = 1000.0


def sharp_network(seed: int = 0, hidden: int = 16) -> PolicyNetwork:
    """A `PolicyNetwork(hidden)` seeded by `seed`, its heads' weights scaled by `HEAD_SCALE` and
    their biases drawn N(0, 3)."""
    torch.manual_seed(seed)
    network = PolicyNetwork(hidden)
    with torch.no_grad():
        heads = (network.op_head, network.slot_head[-1], network.blueprint_head[-1])
        for layer in (*heads, *network.late_heads.values()):
            layer.weight.mul_(HEAD_SCALE)
            layer.bias.normal_(0.0, 3.0)
    return network
