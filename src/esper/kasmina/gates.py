"""Quality gates: pure functions of a SlotReport and thresholds.

G1 (germinated -> training): the seed's output is finite and has the right shape.
G2 (training -> blending): trained long enough, gradients alive (strict: and worth advancing).
G3 (holding -> fossilized): a measured counterfactual (strict: a clear positive one).
`permissive` keeps only structural checks (the default under RL, where the controller should
learn what is worth keeping); `strict` turns the thresholds of docs/architecture.md §11 on.
"""

from __future__ import annotations

from dataclasses import dataclass

from esper.leyline import SlotReport


@dataclass(frozen=True)
class GateProfile:
    name: str
    min_training_epochs: int
    min_gradient_ratio: float | None  # None: only require gradients to be alive when measured
    min_prospective_pp: float | None  # None: no improvement required before blending
    min_contribution_pp: float | None  # None: any measured counterfactual passes G3
    min_contribution_stderrs: float  # contribution must exceed this many standard errors


PERMISSIVE = GateProfile("permissive", 1, None, None, None, 0.0)
STRICT = GateProfile("strict", 3, 0.10, 0.5, 1.0, 2.0)
PROFILES = {p.name: p for p in (PERMISSIVE, STRICT)}


def gate_profile(name: str) -> GateProfile:
    if name not in PROFILES:
        raise ValueError(f"unknown gate profile {name!r}; known: {sorted(PROFILES)}")
    return PROFILES[name]


@dataclass(frozen=True)
class Check:
    name: str
    passed: bool
    detail: str


@dataclass(frozen=True)
class GateResult:
    passed: bool
    checks: tuple[Check, ...]
    message: str


def _result(gate: str, checks: list[Check]) -> GateResult:
    failed = [c for c in checks if not c.passed]
    message = (
        f"{gate} passed" if not failed else f"{gate} failed: " + "; ".join(c.detail for c in failed)
    )
    return GateResult(not failed, tuple(checks), message)


def g1_sanity(report: SlotReport) -> GateResult:
    return _result(
        "G1",
        [Check("output_sane", report.seed_output_sane, "seed output non-finite or misshapen")],
    )


def g2_advance(report: SlotReport, profile: GateProfile) -> GateResult:
    checks = [
        Check(
            "epochs_trained",
            report.epochs_in_stage >= profile.min_training_epochs,
            f"trained {report.epochs_in_stage} < {profile.min_training_epochs} epochs",
        )
    ]
    ratio = report.gradient_ratio
    if profile.min_gradient_ratio is None:
        checks.append(Check("gradients_alive", ratio is None or ratio > 0, "seed gradients are 0"))
    else:
        checks.append(
            Check(
                "gradient_ratio",
                ratio is not None and ratio >= profile.min_gradient_ratio,
                f"gradient ratio {ratio} < {profile.min_gradient_ratio}",
            )
        )
    if profile.min_prospective_pp is not None:
        gain = report.prospective
        checks.append(
            Check(
                "prospective_gain",
                gain is not None and gain >= profile.min_prospective_pp,
                f"prospective gain {gain} pp < {profile.min_prospective_pp} pp",
            )
        )
    return _result("G2", checks)


def g3_fossilize(report: SlotReport, profile: GateProfile) -> GateResult:
    value, stderr = report.contribution, report.contribution_stderr
    checks = [Check("counterfactual_measured", value is not None, "no measured counterfactual")]
    if profile.min_contribution_pp is not None:
        checks.append(
            Check(
                "contribution",
                value is not None and value >= profile.min_contribution_pp,
                f"contribution {value} pp < {profile.min_contribution_pp} pp",
            )
        )
    if profile.min_contribution_stderrs > 0:
        bar = profile.min_contribution_stderrs * (stderr or 0.0)
        checks.append(
            Check(
                "significance",
                value is not None and stderr is not None and value > bar,
                f"contribution {value} pp within {profile.min_contribution_stderrs} standard "
                f"errors ({stderr})",
            )
        )
    return _result("G3", checks)
