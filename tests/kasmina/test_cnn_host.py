"""CNNHost: its normalisation, and why a seed's counterfactual needs GroupNorm."""

import copy

import pytest
import torch
from growth_helpers import germinate, walk_to
from torch import Tensor, nn

from esper.kasmina import CNNHost, MorphogeneticModel
from esper.leyline import Stage


def test_the_default_norm_is_groupnorm() -> None:
    kinds = {type(m) for m in CNNHost().modules()}
    assert any(issubclass(k, nn.GroupNorm) for k in kinds)
    assert not any(issubclass(k, nn.modules.batchnorm._BatchNorm) for k in kinds)


def test_an_unknown_norm_names_the_known_ones() -> None:
    with pytest.raises(ValueError, match=r"unknown norm 'layer'; known: \['batch', 'group'\]"):
        CNNHost(norm="layer")


class Rescale(nn.Module):
    """A seed that doubles the activation: the next conv (no bias) and norm undo it, so the
    host is no better for it."""

    def forward(self, x: Tensor) -> Tensor:
        return 2 * x


@pytest.mark.parametrize("norm", ["batch", "group"])
def test_removing_a_seed_the_host_is_no_better_for_changes_nothing_only_with_groupnorm(
    norm: str,
) -> None:
    """Why the hosts use GroupNorm: BatchNorm's running statistics are gathered with the seed in
    place, so the counterfactual "this seed at alpha 0" runs the host on statistics that no
    longer fit, and measures a cost the seed never had (on digits: 5-10 pp)."""
    torch.manual_seed(0)
    host = CNNHost(in_channels=1, image_size=8, widths=(4, 8, 16), norm=norm)
    alone = copy.deepcopy(host)
    model = MorphogeneticModel(host)
    germinate(model, "r0c0", "conv_light")
    walk_to(model, "r0c0", Stage.HOLDING)
    model.slot("r0c0").seed = Rescale()
    x = torch.randn(64, 1, 8, 8)
    with torch.no_grad():
        for _ in range(50):  # train-mode passes: BatchNorm gathers statistics with the seed in
            trained = model.train()(x)
        # In training, batch statistics undo the rescaling too: the host is no better for it.
        assert (trained - alone.train()(x)).abs().max() <= 1e-3
        real, removed = model.eval().fused_forward(x, [{}, {"r0c0": 0.0}])
    change = float((real - removed).abs().max())
    if norm == "group":
        assert change <= 1e-3
    else:
        assert change > 0.1  # a "contribution" measured against mismatched statistics
