"""The shipped ARES-EA meta-policy and the policy-initialisation option it was trained with (cheap)."""

from __future__ import annotations

import torch
import yaml

from conftest import REPO
from maml_rl import load_policy
from maml_rl.checkpoint import read_metadata
from maml_rl.config import load_config
from maml_rl.training import make_policy

POLICY = REPO / "awake" / "pretrained_ares_ea_policy.th"
CONFIG = REPO / "configs" / "ares_ea.yaml"


def test_shipped_ares_policy_loads_and_matches_its_config() -> None:
    config = load_config(CONFIG)
    policy = load_policy(POLICY)   # torch.load(weights_only=True) inside
    assert (policy.config()["input_size"], policy.config()["output_size"]) == (13, 5)
    assert list(policy.config()["hidden_sizes"]) == config.hidden_sizes
    assert policy.config()["nonlinearity"] == config.nonlinearity
    meta = read_metadata(POLICY)
    assert meta["batch"] + 1 == config.num_batches and meta["seed"] == 1
    assert meta["meta_training_interactions"] > 0 and meta["meta_training_wall_time"] > 0
    # The command in the config's header is the one that produced the file.
    header = CONFIG.read_text().split("\n\n")[0]
    assert f"--experiment-name {meta['experiment']}" in header and "--seed 1" in header
    with torch.no_grad():
        action = policy(torch.zeros(1, 13)).mean
    assert action.shape == (1, 5) and torch.isfinite(action).all()


def test_init_mean_scale_starts_the_policy_near_the_zero_action(tmp_path) -> None:
    data = yaml.safe_load(CONFIG.read_text())
    data["init-mean-scale"] = 1.0
    (tmp_path / "xavier.yaml").write_text(yaml.safe_dump(data))
    data["init-mean-scale"] = 0.01
    (tmp_path / "small.yaml").write_text(yaml.safe_dump(data))
    obs = torch.rand(256, 13) * 2 - 1
    with torch.no_grad():
        xavier = make_policy(load_config(tmp_path / "xavier.yaml"), seed=1)
        small = make_policy(load_config(tmp_path / "small.yaml"), seed=1)
        torch.testing.assert_close(small.mu.weight, 0.01 * xavier.mu.weight)
        assert small(obs).mean.abs().max() < 0.02 < xavier(obs).mean.abs().max()
    data["init-mean-scale"] = 0.0
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(data))
    try:
        load_config(tmp_path / "bad.yaml")
    except Exception as exc:  # ConfigError naming the key
        assert "'init-mean-scale' must be > 0" in str(exc)
    else:
        raise AssertionError("init-mean-scale 0 was accepted")
