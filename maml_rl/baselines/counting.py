"""An environment wrapper that counts real interactions and finished episodes.

The comparison labels every evaluation point with the episodes a method has finished so
far (the lecture's plots count episodes, this project counts interactions; the table gives
both). Every method steps its own wrapped environment, so the count is the same quantity
for SB3's agents, NAF and the model-based methods.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym


class EpisodeCounter(gym.Wrapper):
    """Counts ``steps`` (calls of ``step``) and ``episodes``: episodes begun, i.e. resets
    followed by at least one step (a method that probes 10 times within its first episode
    has used 1 episode; a reset without a step costs nothing)."""

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        self.steps = 0
        self.episodes = 0
        self._fresh = False

    def reset(self, **kwargs: Any) -> tuple[Any, dict[str, Any]]:
        self._fresh = True
        return self.env.reset(**kwargs)

    def step(self, action: Any) -> tuple[Any, Any, bool, bool, dict[str, Any]]:
        self.episodes += int(self._fresh)
        self._fresh = False
        obs, reward, terminated, truncated, info = self.env.step(action)
        self.steps += 1
        return obs, reward, terminated, truncated, info
