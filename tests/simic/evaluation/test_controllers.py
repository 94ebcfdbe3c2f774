"""Controller specs: parsing `--controllers`, labels, refusals."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from esper.simic.environment import EnvConfig, MorphogeneticEnv
from esper.simic.evaluation import ControllerSpec, build_policy, parse_controllers
from esper.tamiyo.policy import PlanPolicy
from esper.tolaria import get_task
from esper.tolaria.data import DataSplits


def test_parse_controllers_keeps_the_order_and_labels_one_ppo_as_ppo() -> None:
    specs = parse_controllers("static, random,heuristic,ppo:runs/2024-ppo-digits")

    assert specs == [
        ControllerSpec("static", "static"),
        ControllerSpec("random", "random"),
        ControllerSpec("heuristic", "heuristic"),
        ControllerSpec("ppo", "ppo", Path("runs/2024-ppo-digits")),
    ]


def test_several_ppo_controllers_are_labelled_by_their_run_directory() -> None:
    specs = parse_controllers("ppo:runs/a,ppo:runs/b/checkpoints/latest.pt")

    assert [s.label for s in specs] == ["ppo:a", "ppo:b"]
    assert specs[1].path == Path("runs/b/checkpoints/latest.pt")


def test_run_directory_timestamps_are_dropped_from_labels_when_names_stay_distinct() -> None:
    lean, default = "runs/20261125-191342-lean", "runs/20261125-193000-ppo-digits"
    assert [s.label for s in parse_controllers(f"ppo:{lean},ppo:{default}")] == [
        "ppo:lean",
        "ppo:ppo-digits",
    ]
    again = "runs/20261126-080000-ppo-digits"
    assert [s.label for s in parse_controllers(f"ppo:{default},ppo:{again}")] == [
        "ppo:20261125-193000-ppo-digits",
        "ppo:20261126-080000-ppo-digits",
    ]


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("bogus", "'bogus'"),
        ("static,", "''"),
        ("ppo", "ppo:PATH"),
        ("ppo:", "ppo:PATH"),
        ("static,static", "static"),
        ("ppo:runs/a,ppo:other/a", "ppo:a"),
    ],
)
def test_bad_controller_lists_are_refused_naming_the_problem(text: str, named: str) -> None:
    with pytest.raises(ValueError, match="controller") as error:
        parse_controllers(text)
    assert named in str(error.value)


def test_an_unknown_controller_error_lists_the_allowed_forms() -> None:
    with pytest.raises(ValueError) as error:
        parse_controllers("static,heuristc")
    message = str(error.value)
    assert "'heuristc'" in message
    assert all(form in message for form in ("static", "random", "heuristic", "ppo:PATH"))


def test_a_fixed_plan_is_a_controller(digits: DataSplits) -> None:
    """`plan:BLUEPRINT@SLOT+...` (issue 10: budget-matched plan search is evaluated this way)."""
    (spec,) = parse_controllers("plan:conv_light@r0c0+norm@r0c1")
    assert (spec.kind, spec.label) == ("plan", "plan:conv_light@r0c0+norm@r0c1")
    env = MorphogeneticEnv(get_task("digits"), digits, EnvConfig(illegal_action="raise"))
    policy = build_policy(spec, env)
    assert isinstance(policy, PlanPolicy)
    assert policy.plan == (("r0c0", "conv_light"), ("r0c1", "norm"))
    with pytest.raises(ValueError, match="plan part 'bogus@r0c0'"):
        build_policy(parse_controllers("plan:bogus@r0c0")[0], env)


def test_a_plan_may_plant_a_slot_only_with_its_family_s_blueprints() -> None:
    """On a host of two layer families a conv blueprint on the dense slot parsed, then was
    skipped silently as if over the parameter budget."""
    from torch import nn

    from esper import make_task

    x, y = torch.randn(40, 2, 8), torch.arange(40) % 2

    def host() -> nn.Sequential:
        return nn.Sequential(
            nn.Conv1d(2, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool1d(1), nn.Flatten(),
            nn.Linear(4, 2),
        )  # fmt: skip

    task = make_task("mixed", train=(x, y), test=(x, y), host=host, cuts=[1, 3])
    env = MorphogeneticEnv(task, config=EnvConfig(illegal_action="raise"))
    ok = build_policy(parse_controllers("plan:conv_light@r0c0+mlp@r0c1")[0], env)
    assert isinstance(ok, PlanPolicy) and ok.plan == (("r0c0", "conv_light"), ("r0c1", "mlp"))
    with pytest.raises(ValueError, match=r"slot r0c1 plants only norm, lora, .*mlp"):
        build_policy(parse_controllers("plan:conv_light@r0c1")[0], env)
