"""One SGD optimizer for host and seeds: groups follow the seeds' lifecycle."""

import pytest
import torch

from esper.kasmina import CNNHost, MorphogeneticModel
from esper.leyline import Curve, FactoredAction, LifecycleLimits, Op, Stage, Tempo
from esper.tolaria import OptimizerSettings, SeedOptimizer
from esper.tolaria.engine import train_epoch

SETTINGS = OptimizerSettings(host_lr=0.03, seed_lr=0.05)
# Prunable at any age, and a slot is free again right after its seed is freed.
LIMITS = LifecycleLimits(min_prune_age=0, embargo_epochs=0)


def make_model() -> MorphogeneticModel:
    torch.manual_seed(0)
    return MorphogeneticModel(CNNHost(widths=(2, 4, 8)), limits=LIMITS)


def germinate(model: MorphogeneticModel, slot: str, blueprint: str = "conv_light") -> None:
    model.execute(FactoredAction.germinate(slot, blueprint, tempo=Tempo.FAST))


def epoch(model: MorphogeneticModel) -> None:
    model.end_epoch()
    model.advance_boundary()


def walk_to(model: MorphogeneticModel, slot: str, stage: Stage) -> None:
    while model.slot(slot).stage != stage:
        if model.slot(slot).report().passes_advance_gate:
            model.execute(FactoredAction(Op.ADVANCE, slot=slot))
        epoch(model)
        assert model.slot(slot).stage != Stage.PRUNED


def train_step(model: MorphogeneticModel, optimizer: SeedOptimizer) -> None:
    """One SGD step through the engine (invisible seeds learn on their shadow pass there)."""
    train_epoch(model, optimizer, [(torch.randn(8, 1, 8, 8), torch.randint(0, 10, (8,)))])


def group(optimizer: SeedOptimizer, name: str) -> dict:
    (found,) = [g for g in optimizer.optimizer.param_groups if g["name"] == name]
    return found


def ids(params: list[torch.nn.Parameter]) -> list[int]:
    return [id(p) for p in params]


def test_a_germinated_seed_gets_its_own_group_at_the_seed_lr() -> None:
    model = make_model()
    optimizer = SeedOptimizer(model, SETTINGS)
    assert optimizer.group_names() == ["host"]
    assert ids(group(optimizer, "host")["params"]) == ids(list(model.host.parameters()))

    germinate(model, "r0c1")
    optimizer.sync()

    assert optimizer.group_names() == ["host", "r0c1"]
    seed_group = group(optimizer, "r0c1")
    assert ids(seed_group["params"]) == ids(model.slot("r0c1").seed_parameters())
    assert seed_group["lr"] == pytest.approx(0.05)  # GERMINATED: seed_lr
    assert group(optimizer, "host")["lr"] == pytest.approx(0.03)

    walk_to(model, "r0c1", Stage.TRAINING)
    optimizer.sync()
    assert group(optimizer, "r0c1")["lr"] == pytest.approx(0.05)


def test_a_blending_seed_gets_the_full_seed_lr_and_a_fossil_the_host_lr() -> None:
    model = make_model()
    optimizer = SeedOptimizer(model, SETTINGS)
    germinate(model, "r0c2")
    walk_to(model, "r0c2", Stage.BLENDING)
    optimizer.sync()
    assert group(optimizer, "r0c2")["lr"] == pytest.approx(0.05)

    walk_to(model, "r0c2", Stage.HOLDING)
    model.slot("r0c2").measured.contribution = 1.0  # what tolaria's counterfactual writes
    model.execute(FactoredAction(Op.FOSSILIZE, slot="r0c2"))
    assert model.slot("r0c2").stage == Stage.FOSSILIZED
    optimizer.sync()

    assert optimizer.group_names() == ["host", "r0c2"]
    assert group(optimizer, "r0c2")["lr"] == pytest.approx(0.03)


def test_pruning_removes_the_group_and_its_momentum() -> None:
    model = make_model()
    optimizer = SeedOptimizer(model, SETTINGS)
    germinate(model, "r0c0")
    germinate(model, "r0c1")
    optimizer.sync()
    train_step(model, optimizer)
    pruned_params = model.slot("r0c1").seed_parameters()
    assert all(p in optimizer.optimizer.state for p in pruned_params)  # momentum buffers exist

    model.execute(FactoredAction(Op.PRUNE, slot="r0c1", tempo=Tempo.INSTANT, curve=Curve.LINEAR))
    optimizer.sync()

    assert optimizer.group_names() == ["host", "r0c0"]
    assert not any(p in optimizer.optimizer.state for p in pruned_params)
    kept = model.slot("r0c0").seed_parameters()
    assert all(p in optimizer.optimizer.state for p in kept)
    train_step(model, optimizer)  # still steps cleanly


def test_a_new_seed_in_a_reused_slot_gets_a_fresh_group() -> None:
    """Even if `sync` is not called between the prune and the next germination."""
    model = make_model()
    optimizer = SeedOptimizer(model, SETTINGS)
    germinate(model, "r0c1")
    optimizer.sync()
    train_step(model, optimizer)
    old_params = model.slot("r0c1").seed_parameters()

    model.execute(FactoredAction(Op.PRUNE, slot="r0c1", tempo=Tempo.INSTANT, curve=Curve.LINEAR))
    while model.slot("r0c1").stage != Stage.DORMANT:
        epoch(model)
    germinate(model, "r0c1", "norm")
    optimizer.sync()

    assert optimizer.group_names() == ["host", "r0c1"]
    assert ids(group(optimizer, "r0c1")["params"]) == ids(model.slot("r0c1").seed_parameters())
    assert not any(p in optimizer.optimizer.state for p in old_params)


def test_reset_state_forgets_momentum() -> None:
    model = make_model()
    optimizer = SeedOptimizer(model, SETTINGS)
    train_step(model, optimizer)
    assert optimizer.optimizer.state
    optimizer.reset_state()
    assert not optimizer.optimizer.state


@pytest.mark.parametrize(
    ("field", "value"),
    [("host_lr", 0.0), ("seed_lr", -1.0), ("momentum", 1.0)],
)
def test_bad_settings_name_the_field(field: str, value: float) -> None:
    kwargs = {"host_lr": 0.1, "seed_lr": 0.1, field: value}
    with pytest.raises(ValueError, match=field):
        OptimizerSettings(**kwargs)
