"""Deciding: the signal tracker, observation features and action masks, the heuristic
controller, and the policy protocol shared by every controller.
"""

from esper.tamiyo.features import ActionMasks, FeatureSpec, Observation, build_features, build_masks
from esper.tamiyo.heuristic import HeuristicConfig, HeuristicController
from esper.tamiyo.policy import HeuristicPolicy, Policy, PolicyStep, RandomPolicy, StaticPolicy
from esper.tamiyo.tracker import SignalTracker, TrackerConfig

__all__ = [
    "ActionMasks",
    "FeatureSpec",
    "HeuristicConfig",
    "HeuristicController",
    "HeuristicPolicy",
    "Observation",
    "Policy",
    "PolicyStep",
    "RandomPolicy",
    "SignalTracker",
    "StaticPolicy",
    "TrackerConfig",
    "build_features",
    "build_masks",
]
