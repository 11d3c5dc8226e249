"""Policies."""

from maml_rl.policies.normal_mlp import NormalMLPPolicy

__all__ = ["NormalMLPPolicy"]
