"""Meta-reinforcement learning (MAML-TRPO) for trajectory steering of the AWAKE electron line."""

from maml_rl.checkpoint import PolicyLoadError, load_policy, save_policy

__all__ = ["PolicyLoadError", "load_policy", "save_policy"]
__version__ = "0.1.0"
