"""What the learned controller reads, in shapes that do not depend on the host (issue 15).

The flat observation (`features.build_features`) has one block per slot and a one-hot over the
host's blueprint names, so its length is the host's. The policy network instead reads

- `globals` (G,): the global block, with the budget feature always present;
- `slots` (S, C + D + E): per slot, its block without the blueprint one-hot (stage, blend,
  the scalars), the descriptor of the blueprint planted there (zeros when none) and the slot's
  own descriptor;
- `blueprints` (S, B, D): the descriptor of each blueprint at each slot (zeros where the slot's
  family does not offer it);

padded to a run's `Padding` (the most slots and blueprints of its hosts), with `slot_valid`
marking the real slots. A shared encoder reads every slot, the blueprint head scores each
blueprint from its descriptor, so one network drives any number of slots and any blueprints.

Every descriptor entry is O(1) by construction, and none has a scale set by one task or one
reward config:

| blueprint descriptor | meaning |
|---|---|
| axes | the position axes of its layer family's activation / 2: dense 0, sequence 0.5, image 1 |
| channels_last | its family's activation is channels-last (B, T, C): a transformer's tokens |
| normalizes | it renormalizes its input (`Traits`) |
| mixes_channels | it mixes features across channels |
| context | log2(1 + positions it sees further along each axis) / 3, at most 1 |
| global_context | it sees the whole input (attention, squeeze-excite) |
| depth | nonlinear layers / 2 |
| log_param_share | log(1 + its parameters at this slot's width / the host's, floored) |

| slot descriptor | meaning |
|---|---|
| axes, channels_last | the slot's layer family's layout, as for a blueprint |
| position | (index + 0.5) / slots: where in the host the slot lies, input side 0, output side 1 |
| log_width | log2(channels at the slot) / 8 (4 channels: 0.25, 256: 1) |
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from esper.kasmina.blueprints import Traits, get_blueprint
from esper.kasmina.families import get_family
from esper.leyline import BlendOp, Stage
from esper.tamiyo.features import FEATURE_CLIP, GLOBAL_FEATURES, SLOT_SCALARS, FeatureSpec

GLOBAL_INPUT = len(GLOBAL_FEATURES) + 1  # the budget feature, FEATURE_CLIP when not observed
SLOT_CORE = len(Stage) + len(BlendOp) + len(SLOT_SCALARS)
# A family is read by its layout, not its name, so a host of a family the controller never
# trained on (a 1-D conv net after CNNs) still looks like its nearest kin.
LAYOUT = ("axes", "channels_last")
BLUEPRINT_DESCRIPTOR = (
    *LAYOUT,
    "normalizes",
    "mixes_channels",
    "context",
    "global_context",
    "depth",
    "log_param_share",
)
SLOT_DESCRIPTOR = (*LAYOUT, "position", "log_width")
SLOT_INPUT = SLOT_CORE + len(BLUEPRINT_DESCRIPTOR) + len(SLOT_DESCRIPTOR)


@dataclass(frozen=True)
class Padding:
    """The slot and blueprint axes of a run's network input: the largest of its hosts'."""

    slots: int
    blueprints: int

    @classmethod
    def of(cls, specs: Iterable[FeatureSpec]) -> Padding:
        specs = list(specs)
        return cls(max(len(s.slot_ids) for s in specs), max(len(s.blueprints) for s in specs))

    def covers(self, spec: FeatureSpec) -> bool:
        return len(spec.slot_ids) <= self.slots and len(spec.blueprints) <= self.blueprints


def layout_row(family: str | None) -> list[float]:
    """A layer family's layout entries (`LAYOUT`); zeros for an unknown one."""
    if family is None:
        return [0.0, 0.0]
    layout = get_family(family)
    axes = layout.rank - 2
    return [axes / 2, float(axes > 0 and layout.channel_dim in (-1, layout.rank - 1))]


def traits_row(traits: Traits) -> list[float]:
    """The descriptor entries a blueprint's `Traits` give (all but family and parameters)."""
    whole = math.isinf(traits.context)
    context = 1.0 if whole else min(math.log2(1 + traits.context) / 3, 1.0)
    return [
        float(traits.normalizes),
        float(traits.mixes_channels),
        context,
        float(whole),
        min(traits.depth, 4) / 2,
    ]


class SlotView:
    """One host's flat features cut into what the network reads, and its descriptor tables.

    A spec made without the host's layout (`slot_families`, `slot_widths`, `planting_params`:
    a hand-made spec in a test) gets zeros for what it lacks: the network still runs, but
    cannot tell its blueprints apart.
    """

    def __init__(self, spec: FeatureSpec) -> None:
        self.spec = spec
        n_slots, n_bp = len(spec.slot_ids), len(spec.blueprints)
        families = spec.slot_families or (None,) * n_slots
        widths = spec.slot_widths or (0,) * n_slots
        slot_rows = []
        blueprints = np.zeros((n_slots, n_bp, len(BLUEPRINT_DESCRIPTOR)), dtype=np.float32)
        for j, (family, width) in enumerate(zip(families, widths, strict=True)):
            log_width = math.log2(width) / 8 if width > 0 else 0.0
            slot_rows.append([*layout_row(family), (j + 0.5) / n_slots, log_width])
            offered = spec.offered[j] if spec.offered is not None else spec.blueprints
            for b, name in enumerate(spec.blueprints):
                if family is None or name not in offered:
                    continue
                params = spec.planting_params[j][b] if spec.planting_params is not None else 0
                traits = get_blueprint(family, name).traits
                row = [*layout_row(family), *traits_row(traits), spec.log_share(params)]
                blueprints[j, b] = row
        self.slot_descriptors = np.asarray(slot_rows, dtype=np.float32)  # (S, E)
        self.blueprint_descriptors = blueprints  # (S, B, D)
        n_stage = len(Stage)
        block = spec.slot_block_size
        starts = [spec.global_size + j * block for j in range(n_slots)]
        # per slot, the flat indices of its core (stage, blend, scalars) and of its blueprint
        # one-hot
        self._core = np.array(
            [[*range(s, s + n_stage), *range(s + n_stage + n_bp, s + block)] for s in starts],
            dtype=np.int64,
        ).reshape(n_slots, SLOT_CORE)
        self._planted = np.array(
            [list(range(s + n_stage, s + n_stage + n_bp)) for s in starts], dtype=np.int64
        ).reshape(n_slots, n_bp)

    def split(self, features: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Flat features (N, F) -> globals (N, G), slot cores (N, S, C) and the descriptor of
        the blueprint planted at each slot (N, S, D)."""
        spec = self.spec
        n = features.shape[0]
        globals_ = np.full((n, GLOBAL_INPUT), FEATURE_CLIP, dtype=np.float32)
        globals_[:, : spec.global_size] = features[:, : spec.global_size]
        core = features[:, self._core]  # (N, S, C)
        planted_1h = features[:, self._planted]  # (N, S, B)
        planted = np.einsum("nsb,sbd->nsd", planted_1h, self.blueprint_descriptors)
        return globals_, core, planted.astype(np.float32)


__all__ = [
    "BLUEPRINT_DESCRIPTOR",
    "GLOBAL_INPUT",
    "LAYOUT",
    "SLOT_CORE",
    "SLOT_DESCRIPTOR",
    "SLOT_INPUT",
    "Padding",
    "SlotView",
    "layout_row",
    "traits_row",
]
