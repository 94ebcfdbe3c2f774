"""The CUDA half of the GPU path (issue 12): run where a GPU is present, skipped elsewhere.

- device-side augmentation equals the CPU augmentation for the same generator state, and a
  loader on the GPU (uint8 images normalized there, a pass's planned augmentation drawn once and
  applied there) yields the CPU loader's batches for the same seed;
- bf16 autocast on the GPU keeps fp32 weights and tracks the fp32 epoch;
- `amp auto` picks bf16 where the GPU has it, else fp16.
"""

from __future__ import annotations

from collections.abc import Sequence

import pytest
import torch

from esper.kasmina import CNNHost, MorphogeneticModel
from esper.tolaria import OptimizerSettings, SeedOptimizer, evaluate, train_epoch
from esper.tolaria.data import CropFlip, PixelNormalization, Split, TensorLoader, random_crop_flip
from esper.tolaria.engine import autocast_dtype

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")

SETTINGS = OptimizerSettings(host_lr=0.1, seed_lr=0.1, momentum=0.9, weight_decay=5e-4)


def batches() -> list[tuple[torch.Tensor, torch.Tensor]]:
    generator = torch.Generator().manual_seed(1)
    return [
        (
            torch.randn(8, 1, 8, 8, generator=generator),
            torch.randint(0, 3, (8,), generator=generator),
        )
        for _ in range(3)
    ]


def test_augmentation_on_the_gpu_equals_the_cpus_for_the_same_generator() -> None:
    x = torch.randn(16, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    on_cpu = random_crop_flip(x, torch.Generator().manual_seed(5), padding=4)
    on_gpu = random_crop_flip(x.cuda(), torch.Generator().manual_seed(5), padding=4)
    assert on_gpu.device.type == "cuda"
    assert torch.equal(on_gpu.cpu(), on_cpu)


class DrawsOn:
    """A planned CropFlip that records where each batch's draws are when applied."""

    def __init__(self) -> None:
        self.crop_flip = CropFlip(padding=4)
        self.devices: list[torch.device] = []

    def draw(self, batch_sizes: Sequence[int], generator: torch.Generator) -> torch.Tensor:
        return self.crop_flip.draw(batch_sizes, generator)

    def apply(self, x: torch.Tensor, draws: torch.Tensor) -> torch.Tensor:
        self.devices.append(draws.device)
        return self.crop_flip.apply(x, draws)


def test_a_gpu_loader_normalizes_and_augments_there_as_the_cpu_loader_does() -> None:
    generator = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (300, 3, 32, 32), dtype=torch.uint8, generator=generator)
    norm = PixelNormalization(mean=(0.4914, 0.4822, 0.4465), std=(0.2470, 0.2435, 0.2616))
    split = Split(images, torch.arange(300), norm)
    on_cpu = TensorLoader(split, 128, shuffle=True, seed=3, augment=CropFlip(padding=4))
    recording = DrawsOn()
    on_gpu = TensorLoader(split, 128, shuffle=True, seed=3, augment=recording).to("cuda")
    for _ in range(2):
        for (x, y), (x_cpu, y_cpu) in zip(on_gpu, on_cpu, strict=True):
            assert x.device.type == y.device.type == "cuda"
            assert torch.equal(x.cpu(), x_cpu)
            assert torch.equal(y.cpu(), y_cpu)
    assert [d.type for d in recording.devices] == ["cuda"] * 6


def test_amp_auto_picks_bf16_where_the_gpu_has_it() -> None:
    expected = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    assert autocast_dtype("auto", torch.device("cuda")) == expected


def test_bf16_training_on_the_gpu_keeps_fp32_weights_and_tracks_fp32() -> None:
    losses = {}
    for amp in (None, torch.bfloat16):
        torch.manual_seed(0)
        host = CNNHost(in_channels=1, image_size=8, widths=(2, 4), num_classes=3)
        model = MorphogeneticModel(host).cuda()
        data = [(x.cuda(), y.cuda()) for x, y in batches()]
        losses[amp] = train_epoch(model, SeedOptimizer(model, SETTINGS), data, amp).loss
        assert all(p.dtype == torch.float32 for p in model.parameters())
        assert isinstance(evaluate(model, data, amp=amp).loss, float)
    assert losses[torch.bfloat16] == pytest.approx(losses[None], rel=0.05)
