"""The ARES experimental-area family (DESY): transverse beam tuning on the Cheetah simulator.

Importing this package registers ``AresEA-v0`` with gymnasium but does not import Cheetah;
building the environment without Cheetah raises an ImportError naming the ``ares`` extra.
"""

import gymnasium as gym

ENV_ID = "AresEA-v0"

if ENV_ID not in gym.registry:
    # The environment handles its own time limit (truncation), so no TimeLimit wrapper.
    gym.register(id=ENV_ID, entry_point="maml_rl.families.ares_ea.env:AresEA")
