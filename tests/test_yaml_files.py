"""Every YAML input (config, evaluation tasks, lattice) reports a missing or malformed file in one line."""

from __future__ import annotations

import pytest

from maml_rl.config import ConfigError, load_config
from maml_rl.envs.lattice import LatticeError, load_lattice
from maml_rl.envs.tasks import TaskFileError, load_evaluation_tasks

LOADERS = [(load_config, ConfigError, "config file"), (load_evaluation_tasks, TaskFileError, "evaluation-task file"),
           (load_lattice, LatticeError, "lattice file")]


@pytest.mark.parametrize("load, error, what", LOADERS)
def test_missing_folder_and_malformed_files(tmp_path, load, error, what) -> None:
    with pytest.raises(error, match=f"{what} not found: .*none.yaml"):
        load(tmp_path / "none.yaml")
    with pytest.raises(error, match=f"{what} is a folder"):
        load(tmp_path)
    bad = tmp_path / "bad.yaml"
    bad.write_text("key: value\nlist: [unclosed\n")
    with pytest.raises(error, match=r"bad.yaml: not valid YAML at line \d"):
        load(bad)
