"""Random op sequences against the seed lifecycle (docs/architecture.md §3 "Stages", §10).

A Hypothesis state machine drives a tiny `MorphogeneticModel` with epochs passing, random factored
actions (legal or not), fake measurements and governor prunes, and checks after every step:
- the legality oracle (`check_action` / `legal_ops`) and the executor agree: a legal action runs,
  an illegal one raises `IllegalActionError` naming the op and changes nothing;
- every stage change emits exactly one event, chained and allowed by `TRANSITIONS`;
- alpha, gradient isolation, seed modules and parameter counts match the stage.
"""

from __future__ import annotations

import hypothesis.strategies as st
import torch
from hypothesis import HealthCheck, event, settings
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from esper.kasmina import (
    PERMISSIVE,
    STRICT,
    CNNHost,
    GateProfile,
    MorphogeneticModel,
    blueprint_names,
)
from esper.kasmina.lifecycle import force_prune
from esper.leyline import (
    FIXED_HEAD_CHOICES,
    HEADS_USED,
    LIVE_STAGES,
    PROBATION_STAGES,
    TRANSITIONS,
    BlendOp,
    FactoredAction,
    Head,
    IllegalActionError,
    Initiator,
    LifecycleEvent,
    LifecycleLimits,
    Op,
    Stage,
    check_action,
    legal_choices,
    legal_ops,
)

LIMITS = LifecycleLimits(min_prune_age=2, embargo_epochs=2)
BLUEPRINTS = blueprint_names("cnn")
SLOT_IDS = ("r0c0", "r0c1")  # the two slots of CNNHost(widths=(2, 4))

# Automatic transitions that wait for epochs in the stage they leave.
EPOCHS_BEFORE = {
    (Stage.GERMINATED, Stage.TRAINING): 1,
    (Stage.PRUNED, Stage.EMBARGOED): 1,
    (Stage.EMBARGOED, Stage.DORMANT): LIMITS.embargo_epochs,
}

# Fake measurements, around the strict gate thresholds (docs/architecture.md §11).
MAYBE_PP = st.sampled_from([None, -1.0, 0.4, 1.0, 3.0])
MAYBE_STDERR = st.sampled_from([None, 0.1, 0.5, 2.0])
MAYBE_RATIO = st.sampled_from([None, 0.0, 0.05, 0.1, 0.5])


def head_value(draw: st.DrawFn, op: Op, head: Head, choices: tuple[object, ...] | None) -> object:
    if head == Head.BLUEPRINT:
        return draw(st.sampled_from(BLUEPRINTS))
    return draw(st.sampled_from(choices or FIXED_HEAD_CHOICES[head]))


@st.composite
def any_action(draw: st.DrawFn) -> FactoredAction:
    """Any action the `FactoredAction` constructor accepts: legal now or not."""
    op = draw(st.sampled_from(Op))
    if op == Op.WAIT:
        return FactoredAction.wait()
    heads = {h.value: head_value(draw, op, h, None) for h in HEADS_USED[op] if h != Head.SLOT}
    return FactoredAction(op, slot=draw(st.sampled_from(SLOT_IDS)), **heads)  # type: ignore[arg-type]


class LifecycleMachine(RuleBasedStateMachine):
    gates: GateProfile = PERMISSIVE

    def __init__(self) -> None:
        super().__init__()
        # Tensors here are tiny: a thread pool only adds overhead (a lot on a busy machine).
        self.torch_threads = torch.get_num_threads()
        torch.set_num_threads(1)
        torch.manual_seed(0)
        self.model = MorphogeneticModel(CNNHost(widths=(2, 4)), limits=LIMITS, gates=self.gates)
        assert tuple(self.model.slot_ids) == SLOT_IDS
        # What the events and the epochs so far say each slot should show.
        self.stage_from_events = {sid: Stage.DORMANT for sid in SLOT_IDS}
        self.epochs_in_stage = dict.fromkeys(SLOT_IDS, 0)
        self.seed_age = dict.fromkeys(SLOT_IDS, 0)

    def teardown(self) -> None:
        torch.set_num_threads(self.torch_threads)

    def follow(self, events: list[LifecycleEvent], initiator: Initiator) -> None:
        for change in events:
            assert change.initiator == initiator, change
            assert change.to_stage in TRANSITIONS[change.from_stage], change
            assert change.from_stage == self.stage_from_events[change.slot_id], change
            wait = EPOCHS_BEFORE.get((change.from_stage, change.to_stage), 0)
            assert self.epochs_in_stage[change.slot_id] >= wait, change
            self.stage_from_events[change.slot_id] = change.to_stage
            self.epochs_in_stage[change.slot_id] = 0
            if change.to_stage == Stage.GERMINATED:
                self.seed_age[change.slot_id] = 0

    # Rules

    @rule(epochs=st.integers(1, 4))
    def epochs_pass(self, epochs: int) -> None:
        for _ in range(epochs):
            ramps = {
                s.slot_id: (s.alpha, s.alpha_schedule.target)
                for s in self.model.seed_slots()
                if s.stage == Stage.BLENDING
            }
            self.model.end_epoch()
            for sid in SLOT_IDS:
                self.epochs_in_stage[sid] += 1
                self.seed_age[sid] += self.stage_from_events[sid] in LIVE_STAGES
            self.follow(self.model.advance_boundary(), Initiator.AUTOMATIC)
            self.check_all_invariants()
            for slot_id, (alpha, target) in ramps.items():  # a ramp only moves towards its target
                assert abs(self.model.slot(slot_id).alpha - target) <= abs(alpha - target)

    @rule(data=st.data(), steer=st.sampled_from([True, True, False]), may_prune=st.booleans())
    def act(self, data: st.DataObject, steer: bool, may_prune: bool) -> None:
        """Any action (legal or not), or mostly (`steer`) one the oracle allows now with allowed
        head values, so that the deep stages are reached; steered prunes only half the time, so
        that seeds live long enough to fossilize. One rule, not two, so that Hypothesis' swarm
        testing (which switches rules off per example) cannot switch off steering alone."""
        reports = self.model.reports()
        options = [
            (sid, op)
            for sid in SLOT_IDS
            for op in sorted(legal_ops(reports[sid], LIMITS))
            if may_prune or op != Op.PRUNE
        ]
        if not steer or not options:
            self.try_action(data.draw(any_action()))
            return
        slot_id, op = data.draw(st.sampled_from(options))
        heads = {
            h.value: head_value(data.draw, op, h, legal_choices(reports[slot_id], op, h))
            for h in HEADS_USED[op]
            if h != Head.SLOT
        }
        self.try_action(FactoredAction(op, slot=slot_id, **heads))  # type: ignore[arg-type]

    @rule(slot_id=st.sampled_from(SLOT_IDS), data=st.data(), promising=st.booleans())
    def measure(self, slot_id: str, data: st.DataObject, promising: bool) -> None:
        """Fake what host training measures about a seed: any values, or (`promising`) values
        that pass even the strict gates, so that ADVANCE and FOSSILIZE become reachable."""
        measured = self.model.slot(slot_id).measured
        if promising:
            measured.contribution = data.draw(st.sampled_from([1.0, 3.0]))
            measured.contribution_stderr = data.draw(st.sampled_from([None, 0.1]))
            measured.prospective = data.draw(st.sampled_from([0.5, 2.0]))
            measured.gradient_ratio = data.draw(st.sampled_from([0.1, 0.5]))
        else:
            measured.contribution = data.draw(MAYBE_PP)
            measured.contribution_stderr = data.draw(MAYBE_STDERR)
            measured.prospective = data.draw(MAYBE_PP)
            measured.gradient_ratio = data.draw(MAYBE_RATIO)

    @rule(slot_id=st.sampled_from(SLOT_IDS), fire=st.sampled_from([False] * 9 + [True]))
    def governor_prune(self, slot_id: str, fire: bool) -> None:
        """A rare rollback after a training catastrophe."""
        if not fire:
            return
        slot = self.model.slot(slot_id)
        before = slot.stage
        events = force_prune(slot, "governor rollback", Initiator.GOVERNOR)
        self.follow(events, Initiator.GOVERNOR)
        if before in PROBATION_STAGES:
            assert slot.stage == Stage.PRUNED
            assert not slot.is_live
        else:
            assert events == []  # nothing to prune, and a fossil is permanent

    def try_action(self, action: FactoredAction) -> None:
        reports = self.model.reports()
        try:
            check_action(action, reports, LIMITS, BLUEPRINTS)
        except IllegalActionError:
            legal = False
        else:
            legal = True
        if legal and action.op != Op.WAIT:
            assert action.slot is not None
            assert action.op in legal_ops(reports[action.slot], LIMITS)
            if action.op == Op.PRUNE:
                assert self.seed_age[action.slot] >= LIMITS.min_prune_age
        if legal:
            self.execute_legal(action)
        else:
            self.execute_illegal(action)

    def execute_legal(self, action: FactoredAction) -> None:
        event(f"legal {action.op.name}")
        events = self.model.execute(action)
        self.follow(events, Initiator.CONTROLLER)
        if action.op == Op.WAIT:
            assert events == []
            return
        assert action.slot is not None
        assert all(e.slot_id == action.slot for e in events)
        slot = self.model.slot(action.slot)
        if action.op == Op.GERMINATE:
            assert slot.stage == Stage.GERMINATED
            assert slot.blueprint == action.blueprint
            assert slot.seed is not None
        elif action.op == Op.ADVANCE:
            assert slot.stage == Stage.BLENDING
        elif action.op == Op.SET_ALPHA_TARGET:
            assert slot.stage == Stage.BLENDING
            assert slot.alpha_schedule.target == action.alpha_target
        elif action.op == Op.FOSSILIZE:
            assert slot.stage == Stage.FOSSILIZED or slot.report().is_fossilizing
        elif action.op == Op.PRUNE:
            assert slot.stage == Stage.PRUNED or slot.report().is_pruning

    def execute_illegal(self, action: FactoredAction) -> None:
        assert action.slot is not None
        slot = self.model.slot(action.slot)
        before = (slot.stage, slot.alpha, slot.epochs_in_stage, slot.seed, slot.report())
        try:
            self.model.execute(action)
        except IllegalActionError as err:
            assert action.op.name in str(err)
        else:
            raise AssertionError(f"illegal {action} was executed")
        after = (slot.stage, slot.alpha, slot.epochs_in_stage, slot.seed, slot.report())
        assert after == before

    # Invariants

    def check_all_invariants(self) -> None:
        self.every_stage_change_emitted_one_event()
        self.timers_count_the_epochs_that_passed()
        self.alpha_isolation_and_seed_match_the_stage()
        self.seed_params_count_real_parameters()

    @invariant()
    def every_stage_change_emitted_one_event(self) -> None:
        for slot in self.model.seed_slots():
            assert slot.stage == self.stage_from_events[slot.slot_id]
            event(f"reached {slot.stage.name}")

    @invariant()
    def timers_count_the_epochs_that_passed(self) -> None:
        for slot in self.model.seed_slots():
            assert slot.epochs_in_stage == self.epochs_in_stage[slot.slot_id]
            if slot.stage in LIVE_STAGES:
                assert slot.seed_age == self.seed_age[slot.slot_id]
            # Automatic transitions happen at the first boundary they are due (after a full
            # epoch: invariants never run between `end_epoch` and `advance_boundary`).
            if slot.stage in (Stage.GERMINATED, Stage.PRUNED):
                assert slot.epochs_in_stage == 0
            if slot.stage == Stage.EMBARGOED:
                assert slot.epochs_in_stage < LIMITS.embargo_epochs
            # A committed ramp (to fossilize, or to prune) runs only while BLENDING.
            report = slot.report()
            if report.is_fossilizing:
                assert slot.stage == Stage.BLENDING
            if report.is_pruning:
                assert slot.stage in (Stage.BLENDING, Stage.PRUNED)

    @invariant()
    def alpha_isolation_and_seed_match_the_stage(self) -> None:
        for slot in self.model.seed_slots():
            stage = slot.stage
            assert isinstance(stage, Stage)
            assert 0.0 <= slot.alpha <= 1.0
            assert slot.report().alpha == slot.alpha
            assert slot.is_isolated == (stage in PROBATION_STAGES)
            assert slot.is_live == (stage in LIVE_STAGES)
            if stage in LIVE_STAGES:
                assert slot.seed is not None
                assert (slot.gate is not None) == (slot.blend_op == BlendOp.GATE)
            else:
                assert slot.alpha == 0.0  # contributes nothing to the host
            if stage in (Stage.DORMANT, Stage.EMBARGOED):
                assert slot.seed is None and slot.gate is None  # freed on entering EMBARGOED
            if stage == Stage.PRUNED:
                assert slot.seed is not None  # kept until the boundary that embargoes it
            if stage == Stage.FOSSILIZED:
                assert slot.alpha == 1.0
                assert not slot.is_isolated
                assert Op.PRUNE not in legal_ops(slot.report(), LIMITS)

    @invariant()
    def seed_params_count_real_parameters(self) -> None:
        live_total = 0
        for slot in self.model.seed_slots():
            modules = [m for m in (slot.seed, slot.gate) if m is not None]
            real = sum(p.numel() for m in modules for p in m.parameters())
            assert slot.seed_params == real
            assert slot.report().seed_params == real
            live_total += real if slot.is_live else 0
        assert self.model.seed_param_count() == live_total


class StrictLifecycleMachine(LifecycleMachine):
    gates = STRICT


SETTINGS = settings(
    max_examples=60,
    stateful_step_count=50,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
LifecycleMachine.TestCase.settings = SETTINGS
StrictLifecycleMachine.TestCase.settings = SETTINGS

TestLifecyclePermissive = LifecycleMachine.TestCase
TestLifecycleStrict = StrictLifecycleMachine.TestCase
