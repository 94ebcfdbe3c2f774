"""The heuristic controller: a researcher's rule set for growing a network, one action per epoch.

It reads an `Observation`: the `EpochMetrics`, the slots' `SlotReport`s, the env's action masks
and the epochs left, plus the host's blueprint names, so it works on every host. It speaks
flat actions (`WAIT`, `GERMINATE_<BP>`, `ADVANCE`, `FOSSILIZE`, `PRUNE`), converted by
`flat_to_factored`, and only ever picks an op that the observation's masks allow on its slot: it
has no legality opinion of its own, so it obeys whatever lifecycle limits the env runs under.
Each epoch it takes the first rule that applies, scanning slots in numeric order:

(a) PRUNE a seed that is failing: its score has not set a new best for `prune_patience` epochs,
    or stayed <= 0 that long, or now hurts (< 0) and lies more than `significance_stderrs`
    standard errors of the difference below its best. The score is the measured counterfactual
    contribution in BLENDING/HOLDING and the prospective one in TRAINING; an epoch without a
    measurement counts as one without improvement (a seed must show evidence to stay). A seed
    whose current score clearly helps (rule b's bar) is never pruned: a +3 pp seed that once
    measured +5 pp is kept, not discarded for the drop.
(b) FOSSILIZE a HOLDING seed whose measured contribution clearly helps: above
    `significance_stderrs` standard errors.
(c) ADVANCE a TRAINING seed after `advance_min_epochs` unless its prospective contribution is
    clearly harmful (below -`significance_stderrs` standard errors). The prospective figure is
    pessimistic: the host downstream has not adapted to the seed yet (on digits, seeds measuring
    -1 pp prospective routinely measured +1..+5 pp once blended), so "not clearly harmful" is
    the bar, not "positive". A seed not measured after `advance_unmeasured_epochs` is advanced
    too, because blending is where its real counterfactual gets measured (and rule a can still
    prune it).
(d) GERMINATE into the first slot that allows it once the host has plateaued, with no seed in
    GERMINATED, TRAINING or BLENDING (one seed in flight, so each counterfactual is read against
    a settled host), and enough epochs left to judge the seed (below), using the next blueprint
    in rotation whose penalty is at most `penalty_skip_above`. All blueprints over the bar: WAIT
    (no silent fallback).
(e) WAIT.

Bars in standard errors. Every contribution comes with the standard error of its paired
per-sample flips (docs/architecture.md §5), so "clearly" means "beyond `significance_stderrs` of
them": a figure is judged against its own noise, whatever the size of the validation split. A drop
is judged against the standard error of the difference of the two measurements, taken as
independent (sqrt(se_best^2 + se_now^2)); they are measured on the same validation samples and
so positively correlated, which makes that error an overestimate and the prune cautious. There
is no floor in percentage points: the noise is what a fixed bar stood in for, and a bar of
practical worth (accuracy against parameters) is the reward's rent, not a rule of this
controller. The bars are strict (a figure must exceed them), so a contribution of 0 with a
standard error of 0 (no sample flipped) never counts as helping. A report carrying a figure
without its standard error is refused.

Time to judge. A seed planted now is of use only if it can reach HOLDING and a FOSSILIZE
decision before the episode ends; otherwise the host pays its rent for nothing. On the fastest
path these rules take, that is `epochs_to_judge(config)` actions: the GERMINATE step (the seed
trains one epoch as GERMINATED; the next boundary moves it to TRAINING through gate G1),
`advance_min_epochs` epochs in TRAINING (at least 1: a TRAINING seed is first seen after one),
one epoch per step of the blend tempo it germinates with (`HEURISTIC_TEMPO`; the last tick lands
in HOLDING and that epoch's evaluation measures the seed), then the FOSSILIZE step. With the
defaults that is 1 + 2 + 3 + 1 = 7, so on a 25-epoch episode the last germination is at epoch 18.

Germination timing. The host must be at `germinate_min_epoch` or later, flat for
`germinate_plateau_epochs`, and either stabilized (the tracker's loss latch) or flat for
`unstabilized_plateau_epochs`. Requiring the latch stops a seed being planted into a host
whose loss is still falling fast behind a momentarily flat accuracy (docs/architecture.md §6).
Accepting a long plateau instead keeps the heuristic from
never growing a host whose loss keeps falling by more than 3% an epoch after its accuracy has
stopped improving (confidence still sharpening), which the latch alone would wait out forever.

Blueprint penalties. A prune adds `prune_penalty` to the pruned seed's blueprint; every `decide`
call (one per epoch) first multiplies all penalties by `penalty_decay`. Only the controller's own
prunes are charged (a governor rollback is not the blueprint's fault). With the §11 defaults
(+2.0, x0.5, skip above 3.0) one prune alone never crosses the bar, and a seed cannot be
pruned twice within `min_prune_age` epochs, so the skip only ever fires under stronger settings.

Per-seed bookkeeping (best score and its standard error, epochs without improvement, epochs at
<= 0) is keyed by slot id and starts afresh when the slot's seed changes (the slot leaves
probation, holds another blueprint, or its seed age goes back), and when the score changes
meaning from prospective (TRAINING) to measured (BLENDING): a contribution at a partial alpha is
not comparable with a prospective one at alpha 1, so comparing them would read every blend-in as
a drop.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

from esper.leyline import (
    PROBATION_STAGES,
    FactoredAction,
    Op,
    SlotReport,
    Stage,
    flat_to_factored,
    sort_slot_ids,
)
from esper.leyline.actions import (  # the blend and tempo `flat_to_factored` germinates with
    HEURISTIC_BLEND,
    HEURISTIC_TEMPO,
)
from esper.tamiyo.features import Observation


@dataclass(frozen=True)
class HeuristicConfig:
    """Thresholds of the heuristic (docs/architecture.md §11); the bars on contributions are in
    standard errors (module docstring: no fixed percentage points)."""

    # Host accuracy flat this many epochs before a germination. §11 began at 3; on digits (25-epoch
    # episodes, a host still improving until about epoch 20) a 3-epoch plateau came at epochs
    # 15-24, too late to blend and judge a seed; 2 came at about epoch 13.
    germinate_plateau_epochs: int = 2
    germinate_min_epoch: int = 5  # never germinate before this epoch: early plateaus are noise
    # A plateau this long germinates without the loss latch, which on digits rarely sets
    # before epoch 20 of 25 (the validation loss keeps falling by more than 3% an epoch).
    unstabilized_plateau_epochs: int = 3
    prune_patience: int = 5  # epochs without a new best (or at <= 0) before a prune
    # "Clearly" helps, harms or fell: beyond this many standard errors (about 2.3% one-sided
    # false alarms per check for a seed that does nothing, under a normal approximation).
    significance_stderrs: float = 2.0
    advance_unmeasured_epochs: int = 3  # advance an unmeasured TRAINING seed after this long
    advance_min_epochs: int = 2  # epochs in TRAINING before a measured seed may advance
    prune_penalty: float = 2.0  # added to a blueprint's penalty when its seed is pruned
    penalty_decay: float = 0.5  # every penalty is multiplied by this once per epoch
    penalty_skip_above: float = 3.0  # the rotation skips blueprints with a larger penalty
    blueprint_order: tuple[str, ...] | None = None  # rotation; None: the given order

    def __post_init__(self) -> None:
        for name in (
            "germinate_plateau_epochs",
            "germinate_min_epoch",
            "advance_unmeasured_epochs",
            "advance_min_epochs",
        ):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.prune_patience < 1:
            raise ValueError(f"prune_patience must be >= 1, got {self.prune_patience}")
        if self.unstabilized_plateau_epochs < self.germinate_plateau_epochs:
            raise ValueError(
                f"unstabilized_plateau_epochs ({self.unstabilized_plateau_epochs}) must be >= "
                f"germinate_plateau_epochs ({self.germinate_plateau_epochs})"
            )
        for name in ("significance_stderrs", "prune_penalty"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"{name} must be finite and >= 0, got {value}")
        if not 0 <= self.penalty_decay <= 1:
            raise ValueError(f"penalty_decay must be in [0, 1], got {self.penalty_decay}")
        if not math.isfinite(self.penalty_skip_above):
            raise ValueError(f"penalty_skip_above must be finite, got {self.penalty_skip_above}")
        if self.blueprint_order is not None and len(self.blueprint_order) == 0:
            raise ValueError("blueprint_order must name at least one blueprint (or be None)")


def epochs_to_judge(config: HeuristicConfig) -> int:
    """Actions from a GERMINATE to the FOSSILIZE decision on its seed, on the fastest path the
    rules take (module docstring, "Time to judge"), both steps included."""
    return 1 + max(config.advance_min_epochs, 1) + int(HEURISTIC_TEMPO) + 1


# Stages whose seed is on its way in: while one exists, nothing new is germinated.
IN_FLIGHT_STAGES = frozenset({Stage.GERMINATED, Stage.TRAINING, Stage.BLENDING})


@dataclass(frozen=True)
class SeedRecord:
    """What the heuristic remembers about the seed in one slot."""

    blueprint: str
    seed_age: int
    signal: str | None  # "prospective" (TRAINING), "contribution" (BLENDING/HOLDING), None
    best: float | None = None
    best_stderr: float | None = None  # the standard error of `best`
    epochs_without_improvement: int = 0
    epochs_not_positive: int = 0


def seed_score(report: SlotReport) -> tuple[str | None, float | None, float | None]:
    """(signal name, score, standard error) the heuristic judges this seed by now."""
    if report.stage == Stage.TRAINING:
        return "prospective", report.prospective, report.prospective_stderr
    if report.stage in (Stage.BLENDING, Stage.HOLDING):
        return "contribution", report.contribution, report.contribution_stderr
    return None, None, None  # GERMINATED: not trained yet, nothing to judge


def observe(record: SeedRecord | None, report: SlotReport) -> SeedRecord:
    """The record after one more epoch of this probationary seed."""
    assert report.blueprint is not None  # checked by the caller
    signal, score, stderr = seed_score(report)
    is_same_seed = (
        record is not None
        and record.blueprint == report.blueprint
        and report.seed_age >= record.seed_age
    )
    if record is None or not is_same_seed or record.signal != signal:
        record = SeedRecord(report.blueprint, report.seed_age, signal)
    record = replace(record, seed_age=report.seed_age)
    if signal is None:
        return record
    if score is None:
        return replace(record, epochs_without_improvement=record.epochs_without_improvement + 1)
    if record.best is None or score > record.best:
        record = replace(record, best=score, best_stderr=stderr, epochs_without_improvement=0)
    else:
        record = replace(record, epochs_without_improvement=record.epochs_without_improvement + 1)
    return replace(record, epochs_not_positive=record.epochs_not_positive + 1 if score <= 0 else 0)


@dataclass(frozen=True)
class _Choice:
    name: str  # flat action name
    slot: str | None
    reason: str


class HeuristicController:
    """Rule-based controller: see the module docstring for the rules and their order.

    Args:
        blueprints: the blueprint names of the host's slots (lower case, as flat action names
            round-trip through upper case).
        config: thresholds; `config.blueprint_order` must name only known blueprints.

    Raises:
        ValueError: on no blueprints, a duplicate or non-lower-case name, or an unknown
            blueprint in `config.blueprint_order`.
    """

    def __init__(
        self, blueprints: Sequence[str], config: HeuristicConfig = HeuristicConfig()
    ) -> None:
        self.blueprints = tuple(blueprints)
        if not self.blueprints:
            raise ValueError("the heuristic needs at least one blueprint")
        if len(set(self.blueprints)) != len(self.blueprints):
            raise ValueError(f"duplicate blueprint names in {self.blueprints}")
        for name in self.blueprints:
            if name != name.lower():
                raise ValueError(
                    f"blueprint {name!r} is not lower case; flat actions GERMINATE_<BP> "
                    "round-trip only lower-case names"
                )
        self.rotation = config.blueprint_order or self.blueprints
        unknown = [b for b in self.rotation if b not in self.blueprints]
        if unknown:
            raise ValueError(
                f"blueprint_order names unknown blueprints {unknown}; known: {self.blueprints}"
            )
        self.config = config
        self.reset()

    def reset(self) -> None:
        """Start a new episode: no penalties, rotation from its first blueprint, no records."""
        self.penalties = dict.fromkeys(self.blueprints, 0.0)
        self.next_rotation_index = 0
        self.records: dict[str, SeedRecord] = {}
        self.last_reason = ""  # why the last `decide` chose its action (for telemetry)

    def decide(self, obs: Observation) -> FactoredAction:
        """Exactly one action for this epoch, one the observation's masks allow (or WAIT).

        Args:
            obs: this epoch's observation; its reports cover every enabled slot, keyed by slot
                id, and its masks cover the same slots.

        Raises:
            ValueError: if a key differs from its report's slot id, a slot id is malformed, the
                masks cover other slots, a probationary seed has no blueprint or one outside
                `blueprints`, or a report gives a contribution without its standard error.
        """
        self._check(obs)
        ordered = [obs.reports[s] for s in sort_slot_ids(obs.reports)]
        self.penalties = {b: p * self.config.penalty_decay for b, p in self.penalties.items()}
        self.records = {
            r.slot_id: observe(self.records.get(r.slot_id), r)
            for r in ordered
            if r.stage in PROBATION_STAGES
        }
        choice = (
            self._prune(obs, ordered)
            or self._fossilize(obs, ordered)
            or self._advance(obs, ordered)
            or self._germinate(obs, ordered)
            or _Choice("WAIT", None, "nothing to do")
        )
        action = flat_to_factored(choice.name, choice.slot, self.blueprints)
        if choice.name == "PRUNE":
            assert choice.slot is not None
            pruned = self.records[choice.slot].blueprint
            self.penalties[pruned] += self.config.prune_penalty
        if choice.slot is not None:
            assert obs.masks.allows(action.op, choice.slot), action
        self.last_reason = choice.reason
        return action

    def _check(self, obs: Observation) -> None:
        if sorted(obs.masks.slot_ids) != sorted(obs.reports):
            raise ValueError(
                f"masks cover slots {sorted(obs.masks.slot_ids)}, reports {sorted(obs.reports)}"
            )
        for key, report in obs.reports.items():
            if key != report.slot_id:
                raise ValueError(f"report under key {key!r} is for slot {report.slot_id!r}")
            if report.stage in PROBATION_STAGES and report.blueprint not in self.blueprints:
                raise ValueError(
                    f"slot {key} ({report.stage.name}) holds blueprint {report.blueprint!r}; "
                    f"known: {self.blueprints}"
                )
            for name in ("contribution", "prospective"):
                value = getattr(report, name)
                if value is not None and getattr(report, f"{name}_stderr") is None:
                    raise ValueError(
                        f"slot {key} reports {name} {value} pp without its standard error; "
                        "the heuristic's bars are in standard errors"
                    )

    def _clearly_helps(self, score: float, stderr: float) -> bool:
        return score > self.config.significance_stderrs * stderr

    def _prune(self, obs: Observation, ordered: list[SlotReport]) -> _Choice | None:
        patience = self.config.prune_patience
        for report in ordered:
            if not obs.masks.allows(Op.PRUNE, report.slot_id):
                continue
            record = self.records[report.slot_id]
            signal, score, stderr = seed_score(report)
            if score is not None:
                assert stderr is not None  # checked by `_check`
                if self._clearly_helps(score, stderr):
                    continue
            where = f"{report.blueprint} in {report.slot_id}"
            if record.epochs_without_improvement >= patience:
                reason = f"{signal} of {where} not improved for {patience} epochs"
                return _Choice("PRUNE", report.slot_id, reason)
            if record.epochs_not_positive >= patience:
                reason = f"{signal} of {where} <= 0 for {patience} epochs"
                return _Choice("PRUNE", report.slot_id, reason)
            if score is not None and score < 0 and self._fell_clearly(record, score, stderr):
                # Only a seed that now hurts: a noisy dip of a still-helping one is no reason.
                assert record.best is not None
                reason = f"{signal} of {where} fell from {record.best:+.2f} to {score:+.2f} pp"
                return _Choice("PRUNE", report.slot_id, reason)
        return None

    def _fell_clearly(self, record: SeedRecord, score: float, stderr: float | None) -> bool:
        """Whether `score` lies clearly below the record's best (module docstring)."""
        if record.best is None:
            return False
        assert stderr is not None and record.best_stderr is not None  # checked by `_check`
        drop_stderr = math.hypot(record.best_stderr, stderr)
        return record.best - score > self.config.significance_stderrs * drop_stderr

    def _fossilize(self, obs: Observation, ordered: list[SlotReport]) -> _Choice | None:
        for report in ordered:
            value, stderr = report.contribution, report.contribution_stderr
            if report.stage != Stage.HOLDING or value is None or stderr is None:
                continue
            if not obs.masks.allows(Op.FOSSILIZE, report.slot_id):
                continue
            if self._clearly_helps(value, stderr):
                reason = f"{report.blueprint} in {report.slot_id} contributes "
                reason += f"{value:+.2f} ± {stderr:.2f} pp"
                return _Choice("FOSSILIZE", report.slot_id, reason)
        return None

    def _advance(self, obs: Observation, ordered: list[SlotReport]) -> _Choice | None:
        cfg = self.config
        for report in ordered:
            if not obs.masks.allows(Op.ADVANCE, report.slot_id):
                continue
            where = f"{report.blueprint} in {report.slot_id}"
            gain, stderr = report.prospective, report.prospective_stderr
            if gain is None:
                if report.epochs_in_stage >= cfg.advance_unmeasured_epochs:
                    reason = (
                        f"{where} unmeasured after {report.epochs_in_stage} epochs: "
                        "blend to measure"
                    )
                    return _Choice("ADVANCE", report.slot_id, reason)
                continue
            assert stderr is not None  # checked by `_check`
            is_clearly_harmful = gain < -cfg.significance_stderrs * stderr
            if report.epochs_in_stage >= cfg.advance_min_epochs and not is_clearly_harmful:
                reason = f"{where} not clearly harmful ({gain:+.2f} ± {stderr:.2f} pp prospective)"
                return _Choice("ADVANCE", report.slot_id, reason)
        return None

    def _germinate(self, obs: Observation, ordered: list[SlotReport]) -> _Choice | None:
        cfg, metrics = self.config, obs.metrics
        if any(r.stage in IN_FLIGHT_STAGES for r in ordered):
            return None
        if metrics.epoch < cfg.germinate_min_epoch:
            return None
        if metrics.plateau_epochs < cfg.germinate_plateau_epochs:
            return None
        if not metrics.is_stabilized and metrics.plateau_epochs < cfg.unstabilized_plateau_epochs:
            return None
        if obs.epochs_left < epochs_to_judge(cfg):
            return None  # too late for the seed to be judged: it would only cost rent
        slots = [r.slot_id for r in ordered if obs.masks.allows(Op.GERMINATE, r.slot_id)]
        if not slots:
            return None
        for slot in slots:  # the first slot where a blueprint in rotation fits the budget

            def fits(name: str, slot: str = slot) -> bool:
                return obs.masks.allows_planting(slot, name, HEURISTIC_BLEND)

            blueprint = self._next_blueprint(fits)
            if blueprint is not None:
                reason = f"host flat for {metrics.plateau_epochs} epochs: {blueprint} into {slot}"
                return _Choice("GERMINATE_" + blueprint.upper(), slot, reason)
        reason = "every blueprint's penalty is above the bar or over the parameter budget"
        return _Choice("WAIT", None, reason)

    def _next_blueprint(self, fits: Callable[[str], bool]) -> str | None:
        """The next blueprint in rotation whose penalty is within the bar and that `fits` (the
        parameter budget); skipped ones lose their turn. None (rotation unchanged) if none is."""
        n = len(self.rotation)
        for step in range(n):
            index = (self.next_rotation_index + step) % n
            blueprint = self.rotation[index]
            if self.penalties[blueprint] <= self.config.penalty_skip_above and fits(blueprint):
                self.next_rotation_index = (index + 1) % n
                return blueprint
        return None

    def state_dict(self) -> dict[str, Any]:
        """Plain Python values (safe for `torch.load(weights_only=True)`)."""
        return {
            "penalties": dict(self.penalties),
            "next_rotation_index": self.next_rotation_index,
            "records": {slot: asdict(r) for slot, r in self.records.items()},
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore a `state_dict()` of a controller built with the same blueprints.

        Raises:
            ValueError: on missing or unexpected keys, or penalties for other blueprints.
        """
        expected = {"penalties", "next_rotation_index", "records"}
        if set(state) != expected:
            raise ValueError(
                f"heuristic state keys mismatch: missing {sorted(expected - set(state))}, "
                f"unexpected {sorted(set(state) - expected)}"
            )
        if set(state["penalties"]) != set(self.blueprints):
            raise ValueError(
                f"state has penalties for {sorted(state['penalties'])}, "
                f"this controller's blueprints are {sorted(self.blueprints)}"
            )
        index = int(state["next_rotation_index"])
        if not 0 <= index < len(self.rotation):
            raise ValueError(f"next_rotation_index {index} outside rotation of {self.rotation}")
        self.penalties = {b: float(p) for b, p in state["penalties"].items()}
        self.next_rotation_index = index
        self.records = {slot: SeedRecord(**r) for slot, r in state["records"].items()}
