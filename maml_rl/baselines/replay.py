"""Replay buffers for off-policy agents: uniform, and proportional prioritised on a sum tree.

Proportional prioritised experience replay (Schaul, Quan, Antonoglou & Silver 2016,
"Prioritized Experience Replay", ICLR) samples transition i with probability

    P(i) = p_i^alpha / sum_k p_k^alpha,        p_i = |delta_i| + eps,

where delta_i is the transition's last TD error, and corrects the bias this introduces with
importance-sampling weights

    w_i = (N P(i))^(-beta) / max_j w_j,

(N transitions stored, maximum over the sampled batch, so weights only scale updates
down), beta annealed linearly from beta_0 to 1 so the correction is complete by the end of
training. A transition whose TD error is unknown (a new one) gets the largest priority
seen so far, so it is replayed at least once soon.

The sum tree stores p_i^alpha in its leaves and, in every internal node, the sum of its two
children: the root holds the total, a priority change costs one walk up (O(log n)) and a
draw with probability P(i) costs one walk down (O(log n)) from a uniform prefix sum.
Sampling is stratified: the total is cut into B equal segments and one prefix sum is drawn
uniformly in each, which lowers the variance of the batch's composition.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Batch:
    """A batch of transitions (s, a, r, s', terminated) with their buffer indices.

    ``terminated`` is 1.0 only when the episode ended in a terminal state of the MDP; a
    time-limit truncation is stored as 0.0 so that its successor value is bootstrapped.
    ``weights`` are the importance-sampling weights (ones for uniform replay).
    """

    obs: np.ndarray          # (B, obs_dim) float32
    actions: np.ndarray      # (B, action_dim) float32
    rewards: np.ndarray      # (B,) float32
    next_obs: np.ndarray     # (B, obs_dim) float32
    terminated: np.ndarray   # (B,) float32 in {0, 1}
    indices: np.ndarray      # (B,) int64
    weights: np.ndarray      # (B,) float32


class ReplayBuffer:
    """Circular buffer of transitions sampled uniformly with replacement.

    Parameters
    ----------
    capacity
        Transitions kept; the oldest is overwritten first.
    obs_dim, action_dim
        Sizes of the flat observation and action vectors.
    """

    def __init__(self, capacity: int, obs_dim: int, action_dim: int) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be >= 1, got {capacity}")
        self.capacity = int(capacity)
        self.obs = np.zeros((capacity, obs_dim), dtype=np.float32)
        self.actions = np.zeros((capacity, action_dim), dtype=np.float32)
        self.rewards = np.zeros(capacity, dtype=np.float32)
        self.next_obs = np.zeros((capacity, obs_dim), dtype=np.float32)
        self.terminated = np.zeros(capacity, dtype=np.float32)
        self._next = 0
        self._size = 0

    def __len__(self) -> int:
        return self._size

    def add(self, obs: np.ndarray, action: np.ndarray, reward: float, next_obs: np.ndarray,
            terminated: bool) -> int:
        """Store one transition; return its index."""
        i = self._next
        self.obs[i] = obs
        self.actions[i] = action
        self.rewards[i] = reward
        self.next_obs[i] = next_obs
        self.terminated[i] = float(terminated)
        self._next = (i + 1) % self.capacity
        self._size = min(self._size + 1, self.capacity)
        return i

    def _gather(self, indices: np.ndarray, weights: np.ndarray) -> Batch:
        return Batch(obs=self.obs[indices], actions=self.actions[indices], rewards=self.rewards[indices],
                     next_obs=self.next_obs[indices], terminated=self.terminated[indices],
                     indices=indices.astype(np.int64), weights=weights.astype(np.float32))

    def sample(self, batch_size: int, rng: np.random.Generator, beta: float = 1.0) -> Batch:
        """Draw ``batch_size`` transitions uniformly (``beta`` is ignored; weights are 1)."""
        if self._size == 0:
            raise ValueError("cannot sample from an empty buffer")
        indices = rng.integers(0, self._size, size=batch_size)
        return self._gather(indices, np.ones(batch_size))


class SumTree:
    """Binary tree whose internal nodes hold the sums of their children (numpy, float64).

    Node 1 is the root, node k has children 2k and 2k+1, and the ``capacity`` values sit in
    the leaves ``size_pow2 + i`` (the leaf count is rounded up to a power of two; the extra
    leaves stay 0 and are never drawn).

    Parameters
    ----------
    capacity
        Number of values.
    """

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be >= 1, got {capacity}")
        self.capacity = int(capacity)
        self._leaves = 1 << max(0, (self.capacity - 1).bit_length())
        self._depth = self._leaves.bit_length() - 1
        self._nodes = np.zeros(2 * self._leaves, dtype=np.float64)

    @property
    def total(self) -> float:
        """Sum of all values (the root)."""
        return float(self._nodes[1])

    def get(self, indices: np.ndarray | int) -> np.ndarray:
        """Values at ``indices``."""
        return self._nodes[self._leaves + np.asarray(indices)]

    def update(self, indices: np.ndarray | int, values: np.ndarray | float) -> None:
        """Set the values at ``indices`` (if an index repeats, its last value wins) and
        recompute the sums on the paths to the root: O(k log n) for k indices."""
        indices = np.atleast_1d(np.asarray(indices, dtype=np.int64))
        values = np.broadcast_to(np.asarray(values, dtype=np.float64), indices.shape)
        if indices.size == 0:
            return
        if indices.min() < 0 or indices.max() >= self.capacity:
            raise IndexError(f"indices must lie in [0, {self.capacity})")
        if not np.all(np.isfinite(values)) or np.any(values < 0):
            raise ValueError("values must be finite and >= 0")
        nodes = self._leaves + indices
        self._nodes[nodes] = values
        # Each parent is recomputed from its two children (not incremented), so rounding
        # errors never accumulate over many updates.
        parents = np.unique(nodes // 2)
        while parents[0] >= 1:
            self._nodes[parents] = self._nodes[2 * parents] + self._nodes[2 * parents + 1]
            if parents[0] == 1:
                break
            parents = np.unique(parents // 2)

    def find(self, prefix_sums: np.ndarray) -> np.ndarray:
        """Indices i with cumsum(values)[i-1] <= u < cumsum(values)[i] for each u (vectorised
        walk down from the root).

        A u at or beyond the total (rounding) lands on the last non-zero value; empty
        subtrees are never entered.
        """
        u = np.array(prefix_sums, dtype=np.float64, copy=True)
        node = np.ones(u.shape, dtype=np.int64)
        for _ in range(self._depth):
            left = 2 * node
            left_sum = self._nodes[left]
            right_sum = self._nodes[left + 1]
            go_right = (u >= left_sum) & (right_sum > 0)
            u = np.where(go_right, u - left_sum, np.minimum(u, left_sum))
            node = np.where(go_right, left + 1, left)
        return node - self._leaves

    def sample_stratified(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """``n`` indices, index i with probability value_i / total: one uniform prefix sum in
        each of ``n`` equal segments of [0, total)."""
        total = self.total
        if not total > 0:
            raise ValueError("cannot sample from a tree whose values are all 0")
        segment = total / n
        u = (np.arange(n) + rng.random(n)) * segment
        return self.find(u)


def annealed_beta(beta0: float, anneal_steps: int, step: int) -> float:
    """Importance-sampling exponent annealed linearly from ``beta0`` (step 0) to 1 (step
    ``anneal_steps`` and after)."""
    if anneal_steps <= 0:
        return 1.0
    return float(beta0 + (1.0 - beta0) * min(1.0, step / anneal_steps))


class PrioritizedReplayBuffer(ReplayBuffer):
    """Proportional prioritised replay (Schaul et al. 2016) on a :class:`SumTree`.

    Parameters
    ----------
    capacity, obs_dim, action_dim
        As for :class:`ReplayBuffer`.
    alpha
        Priority exponent: 0 is uniform replay, 1 fully proportional to |TD error|.
    eps
        Added to |TD error| so that no transition gets probability 0.
    """

    def __init__(self, capacity: int, obs_dim: int, action_dim: int, alpha: float = 0.6,
                 eps: float = 1e-6) -> None:
        super().__init__(capacity, obs_dim, action_dim)
        if alpha < 0:
            raise ValueError(f"alpha must be >= 0, got {alpha}")
        if eps <= 0:
            raise ValueError(f"eps must be > 0, got {eps}")
        self.alpha = float(alpha)
        self.eps = float(eps)
        self.tree = SumTree(capacity)
        self.max_priority = 1.0  # largest p_i = |delta_i| + eps seen so far (before ** alpha)

    def add(self, obs: np.ndarray, action: np.ndarray, reward: float, next_obs: np.ndarray,
            terminated: bool) -> int:
        i = super().add(obs, action, reward, next_obs, terminated)
        self.tree.update(i, self.max_priority ** self.alpha)
        return i

    def probabilities(self, indices: np.ndarray) -> np.ndarray:
        """Sampling probabilities P(i) = p_i^alpha / sum_k p_k^alpha."""
        return self.tree.get(indices) / self.tree.total

    def importance_weights(self, indices: np.ndarray, beta: float) -> np.ndarray:
        """w_i = (N P(i))^-beta divided by the largest w in ``indices``."""
        w = (len(self) * self.probabilities(indices)) ** (-beta)
        return w / w.max()

    def sample(self, batch_size: int, rng: np.random.Generator, beta: float = 1.0) -> Batch:
        """Draw ``batch_size`` transitions with probability P(i) (stratified) and their
        normalised importance weights for exponent ``beta``."""
        if self._size == 0:
            raise ValueError("cannot sample from an empty buffer")
        indices = self.tree.sample_stratified(batch_size, rng)
        return self._gather(indices, self.importance_weights(indices, beta))

    def update_priorities(self, indices: np.ndarray, td_errors: np.ndarray) -> None:
        """Set p_i = |delta_i| + eps for the replayed transitions."""
        priorities = np.abs(np.asarray(td_errors, dtype=np.float64)) + self.eps
        if not np.all(np.isfinite(priorities)):
            raise ValueError("TD errors must be finite")
        self.tree.update(indices, priorities ** self.alpha)
        self.max_priority = max(self.max_priority, float(priorities.max()))
