"""Grow a 1-D convolutional network on a sequence task: scikit-learn's handwritten digits read
as sequences, each 8x8 image scanned row by row into a sequence of 64 pixel values (the
"sequential digits" setting), shipped inside scikit-learn, so it runs offline.

Run it:

    python examples/sequence_conv1d.py

The host has three slots of two layer families, read from its activations: two on (B, C, L)
conv features (conv1d seeds: depthwise, pointwise and conv blocks...) and one on the (B, C)
features after pooling (dense seeds). It plays two episodes with the host alone and two with the
heuristic growing seeds, on the same seeds. Train a learned controller on it with

    esper train ppo --task examples/sequence_conv1d.py:sequential_digits --rounds 20
"""

from __future__ import annotations

import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import nn

import esper


def conv_net() -> nn.Sequential:
    """Two 1-D conv blocks, pooling and a linear head, with three places for slots."""
    # fmt: off
    return nn.Sequential(
        nn.Conv1d(1, 8, 5, padding=2), nn.GroupNorm(4, 8), nn.ReLU(), nn.MaxPool1d(2),
        # cut 3: (B, 8, 32), a conv1d slot
        nn.Conv1d(8, 16, 5, padding=2), nn.GroupNorm(4, 16), nn.ReLU(), nn.MaxPool1d(2),
        # cut 7: (B, 16, 16), a conv1d slot
        nn.AdaptiveAvgPool1d(1), nn.Flatten(),
        # cut 9: (B, 16), a dense slot
        nn.Linear(16, 10),
    )
    # fmt: on


def sequential_digits() -> esper.Task:
    pixels, labels = load_digits(return_X_y=True)
    sequences = (pixels / 16.0).reshape(-1, 1, 64)  # (N, 1 channel, 64 steps)
    x_train, x_test, y_train, y_test = train_test_split(
        sequences, labels, test_size=0.2, stratify=labels, random_state=0
    )
    mean, std = x_train.mean(), x_train.std()
    return esper.make_task(
        "sequential_digits",
        train=((x_train - mean) / std, y_train),
        test=((x_test - mean) / std, y_test),
        host=conv_net,
        cuts=[3, 7, 9],
        batch_size=64,
        host_lr=0.1,
        episode_length=25,
        description="scikit-learn's digits as 64-step pixel sequences, 1-D conv host",
    )


def main() -> None:
    from esper.simic.episodes import run_episodes
    from esper.tamiyo.policy import HeuristicPolicy, StaticPolicy

    torch.set_num_threads(1)
    env = esper.MorphogeneticEnv(sequential_digits())
    model = env.session.model
    print("slots:", ", ".join(f"{s} {model.slot(s).family}" for s in model.slot_ids))
    seeds = [0, 1]
    for policy in (StaticPolicy(), HeuristicPolicy(model.blueprints)):
        for record in run_episodes(policy, [env], seeds):
            outcome = record.outcome
            print(
                f"{policy.name:9s} seed {record.seed}: test accuracy {outcome.test_accuracy:5.1f}%"
                f", {outcome.params_added} parameters added to {outcome.host_params}, "
                f"grown: {', '.join(outcome.grown) or 'nothing'}"
            )


if __name__ == "__main__":
    main()
