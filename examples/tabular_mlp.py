"""Grow an MLP on a tabular dataset: scikit-learn's breast cancer data (569 tumours, 30 features,
benign or malignant), shipped inside scikit-learn, so it runs offline.

Run it:

    python examples/tabular_mlp.py

It plays two episodes with the host alone and two with the rule-based heuristic growing seeds,
on the same seeds, and prints their test accuracy and what grew. Then train a learned
controller on the same task with the command line:

    esper train ppo --task examples/tabular_mlp.py:breast_cancer --rounds 20

(`esper evaluate --task examples/tabular_mlp.py:breast_cancer ...` compares controllers.)
"""

from __future__ import annotations

import torch
from sklearn.datasets import load_breast_cancer
from sklearn.model_selection import train_test_split
from torch import nn

import esper


def mlp() -> nn.Sequential:
    """A narrow MLP: 30 features -> 8 -> 8 -> 2 classes."""
    return nn.Sequential(
        nn.Linear(30, 8),  # 0
        nn.ReLU(),  # 1: a slot after it
        nn.Linear(8, 8),  # 2
        nn.ReLU(),  # 3: a slot after it
        nn.Linear(8, 2),  # 4: the head
    )


def breast_cancer() -> esper.Task:
    """The task: a narrow MLP with a slot after each hidden layer (the `cuts`)."""
    features, labels = load_breast_cancer(return_X_y=True)
    x_train, x_test, y_train, y_test = train_test_split(
        features, labels, test_size=0.25, stratify=labels, random_state=0
    )
    mean, std = x_train.mean(axis=0), x_train.std(axis=0)  # statistics of the training split
    return esper.make_task(
        "breast_cancer",
        train=((x_train - mean) / std, y_train),  # a validation split is carved from it
        test=((x_test - mean) / std, y_test),
        host=mlp,  # a fresh network per episode
        cuts=[1, 3],  # a slot after modules 1 and 3, each on (B, 8) features
        batch_size=32,
        host_lr=0.05,
        episode_length=30,
        description="scikit-learn's breast cancer data, MLP host",
    )


def main() -> None:
    from esper.simic.episodes import run_episodes
    from esper.tamiyo.policy import HeuristicPolicy, StaticPolicy

    torch.set_num_threads(1)
    env = esper.MorphogeneticEnv(breast_cancer())
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
