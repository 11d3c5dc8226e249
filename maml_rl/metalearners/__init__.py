"""Meta-learners."""

from maml_rl.metalearners.maml_trpo import MAMLTRPO, meta_update

__all__ = ["MAMLTRPO", "meta_update"]
