"""Meta-reinforcement learning (MAML-TRPO) for trajectory steering of the AWAKE electron line."""

import os

# MKL's matrix products may round differently depending on where each matrix starts in
# memory, so a task's actions could differ in the last bits between the vectorised sampler
# (all tasks in one stacked tensor) and a worker holding a subset of them. Conditional
# numerical reproducibility (strict mode, the fastest code path for this CPU) removes that
# dependence; MKL reads the setting at its first call, so it is set before any product runs
# (inherited by sampler worker processes). A value set by the user is kept.
os.environ.setdefault("MKL_CBWR", "AUTO,STRICT")

from maml_rl.checkpoint import PolicyLoadError, load_policy, save_policy  # noqa: E402

__all__ = ["PolicyLoadError", "load_policy", "save_policy"]
__version__ = "0.1.0"
