"""The growing model: hosts, seed slots, blueprints, blending, alpha schedules, gates and the
lifecycle that plants, blends, fossilizes and prunes seeds.
"""

from esper.kasmina.alpha_schedule import AlphaSchedule, curve_fraction
from esper.kasmina.blending import SeedGate, blend
from esper.kasmina.blueprints import Blueprint, blueprint_names, get_blueprint, register
from esper.kasmina.cnn_host import CNNHost
from esper.kasmina.gates import (
    PERMISSIVE,
    STRICT,
    GateProfile,
    GateResult,
    g1_sanity,
    g2_advance,
    g3_fossilize,
    gate_profile,
)
from esper.kasmina.host import Host, SlotSpec
from esper.kasmina.model import MorphogeneticModel
from esper.kasmina.sequential_host import SequentialHost
from esper.kasmina.slot import BlendPlan, SeedSlot
from esper.kasmina.transformer_host import TransformerHost

__all__ = [
    "PERMISSIVE",
    "STRICT",
    "AlphaSchedule",
    "BlendPlan",
    "Blueprint",
    "CNNHost",
    "GateProfile",
    "GateResult",
    "Host",
    "MorphogeneticModel",
    "SeedGate",
    "SeedSlot",
    "SequentialHost",
    "SlotSpec",
    "TransformerHost",
    "blend",
    "blueprint_names",
    "curve_fraction",
    "g1_sanity",
    "g2_advance",
    "g3_fossilize",
    "gate_profile",
    "get_blueprint",
    "register",
]
