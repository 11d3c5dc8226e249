"""AWAKE TT43 optics, the steering environment, tasks and reference controllers."""

import gymnasium as gym

ENV_ID = "AwakeSteering-v0"

if ENV_ID not in gym.registry:
    # The environment handles its own time limit (truncation), so no TimeLimit wrapper.
    gym.register(id=ENV_ID, entry_point="maml_rl.envs.awake:AwakeSteering")
