"""Observation features and action masks (docs/architecture.md §6).

Every feature is scaled analytically to O(1) here (accuracy/100, loss/chance-level loss,
epoch/T, log of parameter ratios, one-hots); a running normalizer in simic may standardize
them further. Layout: one global block, then one block per enabled slot in slot-head order.
Masks come only from `legal_ops` / `legal_choices` / `budget_left`: op first, slot given op,
then head masks given op and slot. `flat_mask` folds them into one boolean vector per head, for
agents that mask each head of a `MultiDiscrete` action independently.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Literal

import numpy as np

from esper.leyline import (
    ALPHA_TARGETS,
    HEAD_ORDER,
    HEADS_USED,
    BlendOp,
    Curve,
    EpochMetrics,
    Head,
    LifecycleLimits,
    Op,
    SlotReport,
    Stage,
    Tempo,
    budget_left,
    legal_choices,
    legal_ops,
)

GLOBAL_FEATURES = (
    "epoch_fraction",
    "val_accuracy",
    "train_accuracy",
    "val_loss",
    "train_loss",
    "val_accuracy_delta",
    "val_loss_delta",
    "best_val_accuracy",
    "plateau",
    "is_stabilized",
    "log_growth",
    "log_rent",
)
SLOT_SCALARS = (
    "alpha",
    "alpha_target",
    "alpha_steps_left",
    "epochs_in_stage",
    "seed_age",
    "contribution",
    "contribution_stderr",
    "contribution_trend",
    "has_measurement",
    "log_param_share",
    "log_gradient_ratio",
    "is_pruning",
    "is_fossilizing",
)
# Appended to the global block when `FeatureSpec.observe_budget` is set.
BUDGET_FEATURE = "log_budget_left"
# Parameter shares are of the host's size, floored here so a tiny host's shares stay O(1). A
# constant of the features, not the reward's floor: one controller reads every run alike.
FEATURE_PARAM_FLOOR = 200
FEATURE_CLIP = 10.0  # analytic scaling keeps features O(1); this only guards against outliers
_MAX_TEMPO = max(Tempo)


@dataclass(frozen=True)
class FeatureSpec:
    """The shape of an observation for one host: its slots and its blueprint names.

    `offered` lists, per slot (in `slot_ids` order), the blueprints that slot can plant: a host
    whose slots are of several layer families has the blueprints of them all, each slot only
    its own family's. None: every slot plants every blueprint (a host of one family).
    """

    slot_ids: tuple[str, ...]
    blueprints: tuple[str, ...]
    episode_length: int
    chance_loss: float
    host_params: int
    # One more global feature, what the episode's parameter budget leaves (`BUDGET_FEATURE`):
    # for a controller trained over budgets drawn per episode; off, the layout is unchanged.
    observe_budget: bool = False
    offered: tuple[tuple[str, ...], ...] | None = None
    # The host's layout, which the learned controller's descriptors read (`slot_view`): per
    # slot its layer family and width, and what each of `blueprints` adds there when planted
    # with ADD (0 where the slot does not offer it). None: unknown (a hand-made spec).
    slot_families: tuple[str, ...] | None = None
    slot_widths: tuple[int, ...] | None = None
    planting_params: tuple[tuple[int, ...], ...] | None = None

    def __post_init__(self) -> None:
        n = len(self.slot_ids)
        for name in ("offered", "slot_families", "slot_widths", "planting_params"):
            rows = getattr(self, name)
            if rows is not None and len(rows) != n:
                raise ValueError(f"{name} has {len(rows)} rows for {n} slots")

    @property
    def slot_block_size(self) -> int:
        return len(Stage) + len(self.blueprints) + len(BlendOp) + len(SLOT_SCALARS)

    @property
    def size(self) -> int:
        return self.global_size + len(self.slot_ids) * self.slot_block_size

    @property
    def global_size(self) -> int:
        return len(GLOBAL_FEATURES) + int(self.observe_budget)

    @property
    def head_sizes(self) -> dict[Head, int]:
        return {
            Head.OP: len(Op),
            Head.SLOT: len(self.slot_ids),
            Head.BLUEPRINT: len(self.blueprints),
            Head.BLEND: len(BlendOp),
            Head.TEMPO: len(Tempo),
            Head.ALPHA_TARGET: len(ALPHA_TARGETS),
            Head.CURVE: len(Curve),
        }

    def log_share(self, params: int) -> float:
        return math.log1p(params / max(self.host_params, FEATURE_PARAM_FLOOR))


@dataclass(frozen=True)
class ActionMasks:
    """True where a choice is legal. Shapes: op (n_ops,), slot (n_ops, n_slots),
    blueprint (n_slots, n_bp) and blend (n_slots, 3) (a seed may fit a parameter budget on a
    narrow slot and not on a wide one), tempo (n_ops, 4), alpha_target (n_ops, n_slots, 3),
    curve (3,); `slot_ids` names the slot axis, in slot-head order, `blueprints` the blueprint
    axis."""

    op: np.ndarray
    slot: np.ndarray
    blueprint: np.ndarray
    blend: np.ndarray
    tempo: np.ndarray
    alpha_target: np.ndarray
    curve: np.ndarray
    slot_ids: tuple[str, ...]
    blueprints: tuple[str, ...]

    def as_dict(self) -> dict[str, np.ndarray]:
        return {h.value: getattr(self, h.value) for h in Head}

    def allows(self, op: Op, slot_id: str) -> bool:
        """Whether `op` may target `slot_id` now (the slot mask given the op).

        Raises:
            ValueError: if `slot_id` is not one of `slot_ids`.
        """
        if slot_id not in self.slot_ids:
            raise ValueError(f"unknown slot {slot_id!r}; the masks cover {self.slot_ids}")
        return bool(self.slot[op, self.slot_ids.index(slot_id)])

    def allows_planting(self, slot_id: str, blueprint: str, blend: BlendOp = BlendOp.ADD) -> bool:
        """Whether GERMINATE may plant `blueprint` with `blend` on `slot_id` now (within the
        parameter budget).

        Raises:
            ValueError: if `slot_id` is not one of `slot_ids` or `blueprint` not one of
                `blueprints`.
        """
        if blueprint not in self.blueprints:
            raise ValueError(f"unknown blueprint {blueprint!r}; the masks cover {self.blueprints}")
        if not self.allows(Op.GERMINATE, slot_id):
            return False
        j = self.slot_ids.index(slot_id)
        return bool(self.blueprint[j, self.blueprints.index(blueprint)] and self.blend[j, blend])

    def __eq__(self, other: object) -> bool:  # arrays compare by value, not elementwise
        if not isinstance(other, ActionMasks):
            return NotImplemented
        return (self.slot_ids, self.blueprints) == (other.slot_ids, other.blueprints) and all(
            np.array_equal(getattr(self, h.value), getattr(other, h.value)) for h in Head
        )

    __hash__ = None  # type: ignore[assignment]


@dataclass(frozen=True)
class Observation:
    """What a controller sees at a step: analytic features and masks, plus the raw records the
    heuristic reads and how many actions the episode has left (this one included: 0 once it is
    over), so a controller can tell whether a seed planted now can still be judged."""

    features: np.ndarray  # (FeatureSpec.size,) float32
    masks: ActionMasks
    metrics: EpochMetrics
    reports: Mapping[str, SlotReport]
    epochs_left: int

    def __post_init__(self) -> None:
        if self.epochs_left < 0:
            raise ValueError(f"epochs_left must be >= 0, got {self.epochs_left}")

    def __eq__(self, other: object) -> bool:  # arrays compare by value, not elementwise
        if not isinstance(other, Observation):
            return NotImplemented
        return (
            np.array_equal(self.features, other.features)
            and self.masks == other.masks
            and self.metrics == other.metrics
            and dict(self.reports) == dict(other.reports)
            and self.epochs_left == other.epochs_left
        )

    __hash__ = None  # type: ignore[assignment]


def _clip(x: float) -> float:
    return max(-FEATURE_CLIP, min(FEATURE_CLIP, x))


def global_features(
    spec: FeatureSpec,
    metrics: EpochMetrics,
    seed_params: int,
    rent_weight: float,
    budget_left: int | None = None,
) -> list[float]:
    T, chance = spec.episode_length, spec.chance_loss
    values = [
        metrics.epoch / T,
        metrics.val_accuracy / 100,
        metrics.train_accuracy / 100,
        _clip(metrics.val_loss / chance),
        _clip(metrics.train_loss / chance),
        _clip(metrics.val_accuracy_delta / 10),
        _clip(metrics.val_loss_delta / chance),
        metrics.best_val_accuracy / 100,
        min(metrics.plateau_epochs, T) / T,
        float(metrics.is_stabilized),
        spec.log_share(seed_params),
        _clip(math.log1p(rent_weight)),  # the episode's parameter price (it may vary)
    ]
    if spec.observe_budget:  # no budget reads as the largest value the clip allows
        values.append(FEATURE_CLIP if budget_left is None else _clip(spec.log_share(budget_left)))
    return values


def slot_features(spec: FeatureSpec, r: SlotReport) -> list[float]:
    T = spec.episode_length
    stage = [float(r.stage == s) for s in Stage]
    blueprint = [float(r.blueprint == b) for b in spec.blueprints]
    blend = [float(r.blend == b) for b in BlendOp]
    # While TRAINING the seed is invisible: show what blending it would do instead.
    value, stderr = (
        (r.prospective, r.prospective_stderr)
        if r.stage in (Stage.GERMINATED, Stage.TRAINING)
        else (r.contribution, r.contribution_stderr)
    )
    ratio = r.gradient_ratio
    scalars = [
        r.alpha,
        r.alpha_target,
        r.alpha_steps_left / _MAX_TEMPO,
        min(r.epochs_in_stage, T) / T,
        min(r.seed_age, T) / T,
        _clip((value or 0.0) / 10),
        _clip((stderr or 0.0) / 10),
        _clip((r.contribution_trend or 0.0) / 10),
        float(value is not None),
        spec.log_share(r.seed_params),
        _clip(math.log10(ratio + 1e-6) / 3) if ratio is not None else 0.0,
        float(r.is_pruning),
        float(r.is_fossilizing),
    ]
    return stage + blueprint + blend + scalars


def build_features(
    spec: FeatureSpec,
    metrics: EpochMetrics,
    reports: Mapping[str, SlotReport],
    rent_weight: float,
    budget_left: int | None = None,
) -> np.ndarray:
    """The observation vector; `rent_weight` is the episode's parameter price (the reward's
    rent weight), which a controller trained over several prices needs to see, `budget_left`
    what the episode's parameter budget leaves (`budget_left`; read if `spec.observe_budget`).
    """
    seed_params = sum(r.seed_params for r in reports.values())
    values = global_features(spec, metrics, seed_params, rent_weight, budget_left)
    for slot_id in spec.slot_ids:
        values += slot_features(spec, reports[slot_id])
    features = np.asarray(values, dtype=np.float32)
    assert features.shape == (spec.size,), (features.shape, spec.size)
    return features


def build_masks(
    spec: FeatureSpec,
    reports: Mapping[str, SlotReport],
    limits: LifecycleLimits,
    costs: Mapping[str, Mapping[BlendOp, Sequence[int]]] | None = None,
) -> ActionMasks:
    """The legal choices now.

    Under a parameter budget (`limits.param_budget`) `costs` gives, per slot and blend, what
    each of `spec.blueprints` would add there (`MorphogeneticModel.germination_costs`). The
    blueprint and blend heads are sampled side by side (both given the slot), so the masks
    must make every pair they allow fit what the live seeds leave of the budget: a blueprint is
    legal on a slot if it fits with ADD (which adds nothing of its own), a blend if every legal
    blueprint fits with it (a GATE's parameters may rule it out where ADD fits), GERMINATE only
    on a slot where some blueprint fits.

    Raises:
        ValueError: a budget without `costs`.
    """
    n_slots = len(spec.slot_ids)
    blueprint = np.ones((n_slots, len(spec.blueprints)), dtype=bool)
    if spec.offered is not None:
        blueprint = np.array([[b in row for b in spec.blueprints] for row in spec.offered])
    blend = np.ones((n_slots, len(BlendOp)), dtype=bool)
    slot = np.zeros((len(Op), n_slots), dtype=bool)
    tempo = np.zeros((len(Op), len(Tempo)), dtype=bool)
    alpha = np.zeros((len(Op), n_slots, len(ALPHA_TARGETS)), dtype=bool)
    for j, slot_id in enumerate(spec.slot_ids):
        for op in legal_ops(reports[slot_id], limits):
            slot[op, j] = True
            if Head.ALPHA_TARGET in HEADS_USED[op]:
                allowed = legal_choices(reports[slot_id], op, Head.ALPHA_TARGET)
                alpha[op, j] = [allowed is None or a in allowed for a in ALPHA_TARGETS]
    for op in Op:
        if Head.TEMPO in HEADS_USED[op]:
            any_report = next(iter(reports.values()))  # tempo legality does not depend on slot
            allowed = legal_choices(any_report, op, Head.TEMPO)
            tempo[op] = [allowed is None or t in allowed for t in Tempo]
    left = budget_left(reports, limits)
    if left is not None:
        if costs is None:
            raise ValueError("masks under a parameter budget need the germination costs")
        for j, slot_id in enumerate(spec.slot_ids):
            fits = np.array([costs[slot_id][b] for b in BlendOp]) <= left  # (n_blends, n_bp)
            blueprint[j] &= fits[BlendOp.ADD]
            blend[j] = fits[:, blueprint[j]].all(axis=1)
    slot[Op.GERMINATE] &= blueprint.any(axis=1)
    op_mask: np.ndarray = np.any(slot, axis=1)  # an op is legal if some slot allows it
    op_mask[Op.WAIT] = True
    return ActionMasks(
        op=op_mask,
        slot=slot,
        blueprint=blueprint,
        blend=blend,
        tempo=tempo,
        alpha_target=alpha,
        curve=np.ones(len(Curve), dtype=bool),
        slot_ids=spec.slot_ids,
        blueprints=spec.blueprints,
    )


ActionSpace = Literal["full", "simple"]
ACTION_SPACES: tuple[ActionSpace, ...] = ("full", "simple")


@dataclass(frozen=True)
class Planting:
    """How a seed is planted when only the blueprint and the slot are chosen: by `PlanPolicy`
    and in the "simple" action space (the two must agree, or a plan search and a simple policy
    would not search the same networks)."""

    blend: BlendOp = BlendOp.ADD
    tempo: Tempo = Tempo.FAST
    alpha_target: float = 1.0
    curve: Curve = Curve.LINEAR


PLANTING = Planting()
# The simple space's masks of the heads PLANTING fixes, computed once (they run every step).
_ONLY_BLEND = np.array([b == PLANTING.blend for b in BlendOp])
_ONLY_TEMPO = np.array([t == PLANTING.tempo for t in Tempo])
_ONLY_ALPHA = np.array([a == PLANTING.alpha_target for a in ALPHA_TARGETS])
_ONLY_CURVE = np.array([c == PLANTING.curve for c in Curve])


def restrict_masks(masks: ActionMasks, action_space: ActionSpace) -> ActionMasks:
    """The masks of a smaller action space, for a learned controller.

    "full": unchanged. "simple": seeds are planted the way a fixed plan plants them
    (`PLANTING`: ADD blend, FAST tempo, alpha target 1, linear curve) and SET_ALPHA_TARGET is
    off, so the choices left are when, where and which blueprint to plant, and when to advance,
    fossilize or prune (prune keeps its tempo; its curve, a head shared with GERMINATE, is linear
    too). A germination shrinks from 7 x 3 x 3 x 3 x 3 combinations per slot to 7, the space a
    plan search covers. Only ever removes choices that `masks` allows: what is left is legal.

    Raises:
        ValueError: an unknown action space.
    """
    if action_space == "full":
        return masks
    if action_space != "simple":
        raise ValueError(f"unknown action space {action_space!r}; known: {ACTION_SPACES}")
    op, slot = masks.op.copy(), masks.slot.copy()
    op[Op.SET_ALPHA_TARGET] = False
    slot[Op.SET_ALPHA_TARGET] = False
    tempo = masks.tempo.copy()
    tempo[Op.GERMINATE] &= _ONLY_TEMPO
    alpha = masks.alpha_target.copy()
    alpha[Op.GERMINATE] &= _ONLY_ALPHA
    return replace(
        masks,
        op=op,
        slot=slot,
        blend=masks.blend & _ONLY_BLEND,
        tempo=tempo,
        alpha_target=alpha,
        curve=masks.curve & _ONLY_CURVE,
    )


def _head_given_op(masks: ActionMasks, op: Op, head: Head) -> np.ndarray:
    """The choices of `head` that `op` allows on some slot it may target now."""
    if head == Head.SLOT:
        return masks.slot[op]
    if head == Head.TEMPO:
        return masks.tempo[op]
    if head == Head.ALPHA_TARGET:
        mask: np.ndarray = masks.alpha_target[op][masks.slot[op]].any(axis=0)
        return mask
    if head in (Head.BLUEPRINT, Head.BLEND):
        fits: np.ndarray = getattr(masks, head.value)[masks.slot[op]].any(axis=0)
        return fits
    return getattr(masks, head.value)  # curve: the same for every op


def flat_mask(masks: ActionMasks) -> np.ndarray:
    """One boolean vector over every head's choices, heads concatenated in `HEAD_ORDER`:
    shape (sum of the head sizes,), the layout mask-aware agents expect for a `MultiDiscrete`
    action (e.g. sb3-contrib's MaskablePPO), which mask each head on its own.

    Per head it is the union of the conditional masks: a choice is True when some legal op that
    uses the head allows it on some slot that op may target. A head that no legal op uses (all
    but `op` while only WAIT is legal) is all True: its value is ignored, and a masked sampler
    needs at least one choice per head.
    """
    legal_ops_now = [op for op in Op if masks.op[op]]
    parts = [masks.op]
    for head in HEAD_ORDER[1:]:
        allowed = [
            _head_given_op(masks, op, head) for op in legal_ops_now if head in HEADS_USED[op]
        ]
        size = getattr(masks, head.value).shape[-1]  # every mask's last axis: its head's choices
        parts.append(np.logical_or.reduce(allowed) if allowed else np.ones(size, dtype=bool))
    return np.concatenate(parts)
