"""`torch.compile` for the host's training and evaluation forwards, across lifecycle changes.

Dynamo does not guard the plain attributes of an nn.Module (it assumes a module's configuration
is fixed once built), and a seed slot's stage, blueprint and blend are exactly such attributes:
left alone, a graph compiled while a seed was invisible would go on running after it began to
blend (measured: a 0.1 weight difference one epoch later). So every call passes the model's
structure as a string that the compiled function compares: dynamo guards a compared string by
value, and a lifecycle change recompiles. Alpha schedules are plain objects, which dynamo guards
itself (a blend step recompiles too, until the graphs for the schedule's values are cached).

One compiled function per backend serves every model in the process (with parameters as graph
inputs, a new episode's model of a seen structure reuses its graphs); `COMPILES` counts the
graphs compiled and the seconds the backend spent, so a caller reads what its calls cost.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from esper.kasmina import MorphogeneticModel

BACKENDS = ("inductor", "aot_eager", "eager")
# Graphs cached per compiled function: dynamo's default (8) is spent within one seed's blend.
RECOMPILE_LIMIT = 256


@dataclass
class CompileCounts:
    graphs: int = 0
    seconds: float = 0.0


COMPILES = CompileCounts()


def structure(model: MorphogeneticModel) -> str:
    """Everything a forward's computation depends on that dynamo would not guard."""
    slots = ",".join(
        f"{s.slot_id}:{s.stage.name}:{s.blueprint}:{s.blend_op}" for s in model.seed_slots()
    )
    return f"{model.training}|{slots}"


def _train_forward(model: MorphogeneticModel, x: Tensor, key: str) -> Tensor:
    if key == "":  # never true: the comparison makes dynamo guard `key` by value
        raise ValueError("empty structure key")
    return model(x)


def _fused_forward(
    model: MorphogeneticModel, x: Tensor, configs: Sequence[Mapping[str, float]], key: str
) -> Tensor:
    if key == "":
        raise ValueError("empty structure key")
    return model.fused_forward(x, configs)


def _counting(backend: str) -> Callable[..., Any]:
    """The named backend, counting into `COMPILES` every graph it compiles."""

    def compile_graph(graph: torch.fx.GraphModule, inputs: list[Tensor]) -> Any:
        started = time.perf_counter()
        try:
            if backend == "eager":
                return graph.forward
            from torch._dynamo.backends.registry import lookup_backend

            return lookup_backend(backend)(graph, inputs)
        finally:
            COMPILES.graphs += 1
            COMPILES.seconds += time.perf_counter() - started

    return compile_graph


_COMPILED: dict[str, tuple[Callable[..., Tensor], Callable[..., Tensor]]] = {}


def compiled_forwards(
    backend: str,
) -> tuple[Callable[[MorphogeneticModel, Tensor], Tensor], Callable[..., Tensor]]:
    """(train_forward(model, x), fused_forward(model, x, configs)) compiled with `backend`."""
    if backend not in BACKENDS:
        raise ValueError(f"unknown compile backend {backend!r}; known: {', '.join(BACKENDS)}")
    if backend not in _COMPILED:
        torch._dynamo.config.recompile_limit = max(
            torch._dynamo.config.recompile_limit, RECOMPILE_LIMIT
        )
        _COMPILED[backend] = (
            torch.compile(_train_forward, backend=_counting(backend)),
            torch.compile(_fused_forward, backend=_counting(backend)),
        )
    train, fused = _COMPILED[backend]

    def train_forward(model: MorphogeneticModel, x: Tensor) -> Tensor:
        return train(model, x, structure(model))

    def fused_forward(
        model: MorphogeneticModel, x: Tensor, configs: Sequence[Mapping[str, float]]
    ) -> Tensor:
        return fused(model, x, configs, structure(model))

    return train_forward, fused_forward
