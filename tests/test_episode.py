"""Returns, GAE and normalisation on padded batches against per-episode reference loops."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from maml_rl.baseline import BaselineFitError, LinearFeatureBaseline
from maml_rl.episode import (EpisodeBatch, discounted_returns, generalized_advantages, normalize_per_task,
                             pack_steps)


def random_batch(seed: int = 0, k: int = 2, t: int = 9, b: int = 5) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(1, t + 1, (k, b), generator=g)
    lengths[0, 0] = t
    mask = (torch.arange(t).view(1, t, 1) < lengths.unsqueeze(1)).float()
    rewards = torch.randn(k, t, b, generator=g) * mask
    values = torch.randn(k, t, b, generator=g) * mask
    return dict(rewards=rewards, values=values, mask=mask, lengths=lengths)


def reference_gae(r, v, gamma, lam):
    """Textbook per-episode GAE of a finite-horizon episode: delta_t = r_t + gamma V_{t+1} - V_t, V_n = 0."""
    n = len(r)
    adv = np.zeros(n)
    running = 0.0
    for t in reversed(range(n)):
        next_v = v[t + 1] if t + 1 < n else 0.0
        delta = r[t] + gamma * next_v - v[t]
        running = delta + gamma * lam * running
        adv[t] = running
    return adv


@pytest.mark.parametrize("gamma, lam", [(1.0, 0.99), (0.9, 0.5), (0.99, 1.0)])
def test_returns_and_gae_equal_per_episode_loops(gamma: float, lam: float) -> None:
    data = random_batch()
    returns = discounted_returns(data["rewards"], data["mask"], gamma)
    adv = generalized_advantages(data["rewards"], data["values"], data["mask"], gamma, lam)
    k, t, b = data["rewards"].shape
    for i in range(k):
        for e in range(b):
            n = int(data["lengths"][i, e])
            r = data["rewards"][i, :n, e].double().numpy()
            expected_returns = [sum(gamma ** k * r[s + k] for k in range(n - s)) for s in range(n)]
            np.testing.assert_allclose(returns[i, :n, e].numpy(), expected_returns, rtol=1e-5, atol=1e-5)
            expected = reference_gae(r, data["values"][i, :n, e].double().numpy(), gamma, lam)
            np.testing.assert_allclose(adv[i, :n, e].numpy(), expected, rtol=1e-5, atol=1e-5)
            assert torch.all(returns[i, n:, e] == 0) and torch.all(adv[i, n:, e] == 0)


def _truncating_batch(horizon: int = 6, episodes: int = 40, seed: int = 0) -> EpisodeBatch:
    """Episodes of one task; half reach the time limit (truncated), rewards all negative."""
    g = torch.Generator().manual_seed(seed)
    lengths = torch.where(torch.arange(episodes) % 2 == 0, torch.tensor(horizon),
                          torch.randint(1, horizon, (episodes,), generator=g)).view(1, episodes)
    mask = (torch.arange(horizon).view(1, horizon, 1) < lengths.unsqueeze(1)).float()
    obs = torch.randn(1, horizon, episodes, 3, generator=g) * mask.unsqueeze(-1)
    rewards = -(1.0 + obs.square().sum(-1)) * mask
    truncated = lengths == horizon
    return EpisodeBatch(observations=obs, actions=torch.zeros(1, horizon, episodes, 2), rewards=rewards, mask=mask,
                        lengths=lengths, terminated=~truncated, success=torch.zeros_like(truncated),
                        last_observations=torch.randn(1, episodes, 3, generator=g) * 50)


def test_time_limit_is_part_of_the_task_no_bootstrap() -> None:
    # One truncated episode: the last step's advantage is r - V(s_{T-1}), whatever comes after.
    rewards = torch.tensor([[[-1.0], [-1.0]]])  # K=1, T=2, B=1
    values = torch.tensor([[[-1.5], [-0.75]]])
    adv = generalized_advantages(rewards, values, torch.ones(1, 2, 1), gamma=1.0, gae_lambda=1.0)
    torch.testing.assert_close(adv, torch.tensor([[[-2.0 + 1.5], [-1.0 + 0.75]]]))


@pytest.mark.parametrize("gamma", [1.0, 0.95])
def test_truncated_episodes_use_the_baselines_own_targets(gamma: float) -> None:
    # With lambda = 1 the advantage is exactly (return the baseline was fitted to) - (its value):
    # no evaluation of the baseline outside the fitted steps (t = T), even for extreme final
    # observations, and no positive values where every reward is negative.
    batch = _truncating_batch()
    baseline = LinearFeatureBaseline(3)
    adv = batch.compute_advantages(baseline, gamma, 1.0, normalize=False)
    returns = discounted_returns(batch.rewards, batch.mask, gamma)
    values = baseline.predict(batch.observations, batch.time_steps)
    torch.testing.assert_close(adv, (returns - values) * batch.mask, rtol=1e-5, atol=1e-5)
    moved = EpisodeBatch(**{**{f: getattr(batch, f) for f in ("observations", "actions", "rewards", "mask",
                                                              "lengths", "terminated", "success")},
                            "last_observations": -batch.last_observations})
    torch.testing.assert_close(moved.compute_advantages(LinearFeatureBaseline(3), gamma, 1.0, normalize=False), adv)


def test_padding_never_leaks() -> None:
    data = random_batch(3)
    garbage = {key: value.clone() for key, value in data.items()}
    pad = data["mask"] == 0
    garbage["rewards"][pad] = 1e6
    garbage["values"][pad] = -1e6
    out = []
    for d in (data, garbage):
        adv = generalized_advantages(d["rewards"], d["values"], d["mask"], 0.99, 0.95)
        out.append(normalize_per_task(adv, d["mask"]))
    torch.testing.assert_close(out[0], out[1])
    normalised = out[0]
    assert torch.all(normalised[pad] == 0)
    for i in range(normalised.shape[0]):
        valid = normalised[i][data["mask"][i] > 0]
        assert abs(float(valid.mean())) < 1e-5
        assert float(valid.std(unbiased=False)) == pytest.approx(1.0, abs=1e-4)


def test_pack_steps_moves_valid_entries_to_the_front() -> None:
    data = random_batch(5)
    obs = torch.randn(*data["mask"].shape, 3)
    packed_obs, packed_r, packed_mask = pack_steps(data["mask"], obs, data["rewards"])
    for i in range(data["mask"].shape[0]):
        valid = data["mask"][i] > 0
        count = int(valid.sum())
        assert packed_mask[i].sum() == count and torch.all(packed_mask[i, :count] == 1)
        torch.testing.assert_close(packed_obs[i, :count], obs[i][valid])
        torch.testing.assert_close(packed_r[i, :count], data["rewards"][i][valid])
        assert torch.all(packed_obs[i, count:] == 0)


def _linear_data(weights: torch.Tensor, k: int = 2, t: int = 80, b: int = 6, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    baseline = LinearFeatureBaseline(3, reg_coeff=1e-10)
    obs = torch.randn(k, t, b, 3, generator=g)
    steps = torch.arange(t, dtype=torch.float32).view(1, t, 1).expand(k, t, b)
    lengths = torch.randint(3, t + 1, (k, b), generator=g)
    mask = (torch.arange(t).view(1, t, 1) < lengths.unsqueeze(1)).float()
    targets = torch.einsum("ktbf,kf->ktb", baseline.features(obs, steps), weights)
    return baseline, obs, steps, mask, targets


def test_baseline_recovers_known_weights_unaffected_by_padding() -> None:
    true = torch.randn(2, 10, dtype=torch.float64)
    baseline, obs, steps, mask, targets = _linear_data(true)
    corrupted = targets.clone()
    corrupted[mask == 0] = 1e4  # padded targets must not enter the fit
    baseline.fit(obs, steps, mask, corrupted)
    torch.testing.assert_close(baseline.weights, true, rtol=1e-5, atol=1e-5)
    prediction = baseline.predict(obs, steps)
    torch.testing.assert_close(prediction[mask > 0], targets[mask > 0].float(), rtol=1e-4, atol=1e-4)


def test_baseline_regularisation_escalates_then_fails_clearly() -> None:
    true = torch.randn(1, 10, dtype=torch.float64)
    baseline, obs, steps, mask, targets = _linear_data(true, k=1)
    baseline.fit(torch.zeros_like(obs), torch.zeros_like(steps), mask, targets)  # singular X^T X: ridge saves it
    assert torch.isfinite(baseline.weights).all()
    obs[0, 0, 0, 0] = float("nan")
    with pytest.raises(BaselineFitError, match="linear baseline fit failed"):
        baseline.fit(obs, steps, mask, targets)


def test_episode_batch_concatenate_and_select() -> None:
    def make(k, t, b, seed):
        g = torch.Generator().manual_seed(seed)
        lengths = torch.randint(1, t + 1, (k, b), generator=g)
        lengths[:, 0] = t
        mask = (torch.arange(t).view(1, t, 1) < lengths.unsqueeze(1)).float()
        return EpisodeBatch(observations=torch.randn(k, t, b, 2, generator=g) * mask[..., None],
                            actions=torch.randn(k, t, b, 2, generator=g) * mask[..., None],
                            rewards=torch.randn(k, t, b, generator=g) * mask, mask=mask, lengths=lengths,
                            terminated=torch.ones(k, b, dtype=torch.bool), success=torch.ones(k, b, dtype=torch.bool),
                            last_observations=torch.randn(k, b, 2, generator=g))
    a, b = make(2, 4, 3, 0), make(1, 7, 3, 1)
    joined = EpisodeBatch.concatenate([a, b])
    assert joined.rewards.shape == (3, 7, 3) and joined.interactions() == a.interactions() + b.interactions()
    back = joined.select_tasks([0, 1])
    for name in ("observations", "rewards", "mask", "lengths", "last_observations"):
        torch.testing.assert_close(getattr(back, name), getattr(a, name))
    torch.testing.assert_close(joined.select_tasks([2]).rewards, b.rewards)


def test_advantage_std_floor_only_damps_tasks_without_signal() -> None:
    # Task 0: advantages spread 1e-3 (noise: e.g. every episode succeeds in one step); task 1: spread 5.
    g = torch.Generator().manual_seed(0)
    raw = torch.randn(2, 4, 6, generator=g, dtype=torch.float64)
    raw = raw / raw.std(dim=(1, 2), unbiased=False, keepdim=True)
    values = raw * torch.tensor([1e-3, 5.0], dtype=torch.float64).view(2, 1, 1) + 3.0
    mask = torch.ones_like(values)
    plain = normalize_per_task(values, mask)
    floored = normalize_per_task(values, mask, min_std=1.0)
    for out in (plain, floored):
        assert float(out[1].std(unbiased=False)) == pytest.approx(1.0, rel=1e-6)  # signal: unit variance
        torch.testing.assert_close(out[0].mean(), torch.tensor(0.0, dtype=torch.float64), atol=1e-9, rtol=0)
    assert float(plain[0].std(unbiased=False)) == pytest.approx(1.0, rel=1e-4)  # noise blown up to unit size
    assert float(floored[0].std(unbiased=False)) == pytest.approx(1e-3, rel=1e-4)  # noise kept at its size
    torch.testing.assert_close(floored[0], (values[0] - values[0].mean()) / (1.0 + 1e-8))
