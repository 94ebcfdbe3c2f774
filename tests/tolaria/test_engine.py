"""The one train/evaluate engine: per-sample means and the fused K-configuration evaluation."""

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor

from esper.kasmina import CNNHost, MorphogeneticModel, TransformerHost
from esper.leyline import FactoredAction, Op, Stage, Tempo
from esper.tolaria import OptimizerSettings, SeedOptimizer, evaluate, train_epoch
from esper.tolaria.engine import autocast_dtype

SETTINGS = OptimizerSettings(host_lr=0.1, seed_lr=0.1, momentum=0.9, weight_decay=5e-4)


def tiny_model(widths: tuple[int, ...] = (2, 4)) -> MorphogeneticModel:
    torch.manual_seed(0)
    return MorphogeneticModel(CNNHost(in_channels=1, image_size=8, widths=widths, num_classes=3))


def uneven_batches(sizes: tuple[int, ...] = (4, 4, 3)) -> list[tuple[Tensor, Tensor]]:
    """Batches whose last one is smaller, so a mean of batch means is not the per-sample mean."""
    generator = torch.Generator().manual_seed(1)
    return [
        (
            torch.randn(n, 1, 8, 8, generator=generator),
            torch.randint(0, 3, (n,), generator=generator),
        )
        for n in sizes
    ]


def germinate(model: MorphogeneticModel, slot: str, blueprint: str = "conv_light") -> None:
    model.execute(FactoredAction.germinate(slot, blueprint, tempo=Tempo.FAST))


def walk_to(model: MorphogeneticModel, slot: str, stage: Stage) -> None:
    """Pass epochs (and ADVANCE out of TRAINING) until the germinated slot reaches `stage`."""
    while model.slot(slot).stage != stage:
        if model.slot(slot).report().passes_advance_gate:
            model.execute(FactoredAction(Op.ADVANCE, slot=slot))
        model.end_epoch()
        model.advance_boundary()
        assert model.slot(slot).stage != Stage.PRUNED


def test_train_epoch_loss_is_the_per_sample_mean_over_uneven_batches() -> None:
    model = tiny_model()
    reference = copy.deepcopy(model)
    batches = uneven_batches()

    stats = train_epoch(model, SeedOptimizer(model, SETTINGS), batches)

    # The same SGD steps by hand, keeping each batch's loss and correct count.
    reference.train()
    sgd = torch.optim.SGD(reference.host.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
    batch_losses, correct = [], 0
    for x, y in batches:
        logits = reference(x)
        loss = F.cross_entropy(logits, y)
        sgd.zero_grad()
        loss.backward()
        sgd.step()
        batch_losses.append(loss.item())
        correct += int((logits.argmax(-1) == y).sum())
    per_sample = (4 * batch_losses[0] + 4 * batch_losses[1] + 3 * batch_losses[2]) / 11
    mean_of_means = sum(batch_losses) / 3

    assert stats.samples == 11
    assert stats.loss == pytest.approx(per_sample, rel=1e-5)
    assert abs(per_sample - mean_of_means) > 1e-4  # the check above tells the two apart
    assert stats.accuracy == pytest.approx(100.0 * correct / 11)
    for trained, expected in zip(model.host.parameters(), reference.host.parameters(), strict=True):
        torch.testing.assert_close(trained, expected)


def test_train_epoch_reports_gradient_ratio_of_a_training_seed_only() -> None:
    model = tiny_model()
    assert (
        train_epoch(model, SeedOptimizer(model, SETTINGS), uneven_batches()).gradient_ratios == {}
    )

    germinate(model, "r0c1")
    walk_to(model, "r0c1", Stage.TRAINING)
    stats = train_epoch(model, SeedOptimizer(model, SETTINGS), uneven_batches())
    assert set(stats.gradient_ratios) == {"r0c1"}
    assert stats.gradient_ratios["r0c1"] > 0


def test_train_epoch_and_evaluate_refuse_empty_input() -> None:
    model = tiny_model()
    with pytest.raises(ValueError, match="no batches"):
        train_epoch(model, SeedOptimizer(model, SETTINGS), [])
    with pytest.raises(ValueError, match="no batches"):
        evaluate(model, [])


def reference_logits(model: MorphogeneticModel, x: Tensor, alphas: dict[str, float]) -> Tensor:
    """Segment by segment with ADD blending written out: h + alpha * (seed(h) - h)."""
    h = x
    for i, spec in enumerate(model.specs):
        h = model.host.forward_segment(i, h)
        slot = model.slot(spec.slot_id)
        if slot.is_live:
            assert slot.seed is not None
            h = h + alphas.get(spec.slot_id, slot.alpha) * (slot.seed(h) - h)
    return model.host.head(h)


@torch.no_grad()
def test_evaluate_k_configurations_matches_separate_passes() -> None:
    model = tiny_model()
    germinate(model, "r0c1")
    walk_to(model, "r0c1", Stage.BLENDING)
    with torch.no_grad():  # move the seed off the identity, so the configurations differ
        for p in model.slot("r0c1").seed_parameters():
            p.add_(0.5 * torch.randn_like(p))
    alpha = model.slot("r0c1").alpha
    assert 0 < alpha < 1
    batches = uneven_batches()
    configs = [{}, {"r0c1": 0.0}, {"r0c1": 1.0}]

    stats = evaluate(model, batches, configs)

    x = torch.cat([b[0] for b in batches])
    y = torch.cat([b[1] for b in batches])
    model.eval()
    expected_logits = [
        reference_logits(model, x, {"r0c1": alpha}),
        model.host(x),  # alpha 0 is the host alone
        reference_logits(model, x, {"r0c1": 1.0}),
    ]
    assert stats.correct.shape == (3, 11)
    assert stats.correct.dtype == torch.bool
    for k, logits in enumerate(expected_logits):
        assert stats.losses[k] == pytest.approx(float(F.cross_entropy(logits, y)), rel=1e-5)
        assert torch.equal(stats.correct[k], logits.argmax(-1) == y)
        assert stats.accuracies[k] == pytest.approx(100.0 * stats.correct[k].float().mean().item())
    assert (stats.loss, stats.accuracy) == (stats.losses[0], stats.accuracies[0])
    assert len(set(stats.losses)) == 3


def test_evaluate_on_a_language_model_has_one_column_per_token() -> None:
    torch.manual_seed(0)
    host = TransformerHost(
        vocab_size=16, block_size=8, n_layer=2, n_head=2, n_embd=16, n_segments=2
    )
    model = MorphogeneticModel(host)
    tokens = torch.randint(0, 16, (5, 9))
    batches = [(tokens[:3, :-1], tokens[:3, 1:]), (tokens[3:, :-1], tokens[3:, 1:])]

    stats = evaluate(model, batches, [{}, {}])

    model.eval()
    with torch.no_grad():
        logits = model(tokens[:, :-1])  # (B, T, V)
    expected = F.cross_entropy(logits.reshape(-1, 16), tokens[:, 1:].reshape(-1))
    assert stats.correct.shape == (2, 5 * 8)
    assert stats.losses[0] == pytest.approx(float(expected), rel=1e-5)
    assert stats.losses[0] == pytest.approx(stats.losses[1], rel=1e-6)


# -- autocast (issue 12 item 2): bf16 on the CPU ---------------------------------------------


def test_autocast_dtype_names_the_precision_and_auto_is_bf16_on_the_cpu() -> None:
    cpu = torch.device("cpu")
    assert autocast_dtype("off", cpu) is None
    assert autocast_dtype("bf16", cpu) == autocast_dtype("auto", cpu) == torch.bfloat16
    assert autocast_dtype("fp16", cpu) == torch.float16


def test_bf16_training_runs_in_bf16_keeps_fp32_weights_and_tracks_fp32() -> None:
    """The forwards run in bf16 (a hook sees bf16 activations), the weights and the gradients
    stay fp32, the loss and metrics are fp32 and close to the fp32 epoch's, a training seed's
    shadow pass gets its gradient too."""
    stats = {}
    for amp in (None, torch.bfloat16):
        model = tiny_model()
        germinate(model, "r0c1")
        walk_to(model, "r0c1", Stage.TRAINING)  # invisible: trained by its shadow pass
        seen: list[torch.dtype] = []
        conv = next(m for m in model.host.modules() if isinstance(m, torch.nn.Conv2d))
        conv.register_forward_hook(lambda _m, _i, out, seen=seen: seen.append(out.dtype))
        stats[amp] = train_epoch(model, SeedOptimizer(model, SETTINGS), uneven_batches(), amp)
        assert set(seen) == {torch.float32 if amp is None else torch.bfloat16}
        assert all(p.dtype == torch.float32 for p in model.parameters())
        assert stats[amp].gradient_ratios["r0c1"] > 0
        evaluated = evaluate(model, uneven_batches(), [{}, {"r0c1": 1.0}], amp)
        assert all(isinstance(v, float) for v in evaluated.losses)
    assert stats[torch.bfloat16].loss == pytest.approx(stats[None].loss, rel=0.05)
    assert stats[torch.bfloat16].loss != stats[None].loss  # it did compute in bf16


def test_bf16_evaluation_is_close_to_fp32() -> None:
    model = tiny_model()
    fp32 = evaluate(model, uneven_batches())
    bf16 = evaluate(model, uneven_batches(), amp=torch.bfloat16)
    assert bf16.loss == pytest.approx(fp32.loss, rel=0.02)
    assert bf16.loss != fp32.loss
    assert abs(bf16.accuracy - fp32.accuracy) <= 100 / 11  # at most one of 11 samples flips


def test_fp16_training_scales_its_losses_and_tracks_fp32() -> None:
    """fp16 forwards with a GradScaler: fp32 weights, a seed's shadow gradient and its ratio
    read unscaled (the same ratio as fp32 to fp16 precision), a loss close to fp32's."""
    with pytest.raises(ValueError, match="GradScaler"):
        model = tiny_model()
        train_epoch(model, SeedOptimizer(model, SETTINGS), uneven_batches(), torch.float16)
    stats = {}
    for amp in (None, torch.float16):
        model = tiny_model()
        germinate(model, "r0c1")
        walk_to(model, "r0c1", Stage.TRAINING)
        scaler = torch.amp.GradScaler("cpu") if amp is not None else None
        optimizer = SeedOptimizer(model, SETTINGS)
        stats[amp] = train_epoch(model, optimizer, uneven_batches(), amp, scaler)
        assert all(p.dtype == torch.float32 for p in model.parameters())
        if scaler is not None:
            assert scaler.get_scale() > 1  # the losses were scaled
    assert stats[torch.float16].loss == pytest.approx(stats[None].loss, rel=0.05)
    ratio = stats[torch.float16].gradient_ratios["r0c1"]
    assert ratio == pytest.approx(stats[None].gradient_ratios["r0c1"], rel=0.05)
