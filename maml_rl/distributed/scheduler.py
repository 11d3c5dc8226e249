"""ASHA whose rungs survive an interrupted search (imports Ray: the extra ``ray``).

Ray Tune's restore (``Tuner.restore``) brings back the trials and the search algorithm's
state, but the scheduler comes back as it was pickled when the search started: the values
ASHA recorded at its rungs are lost, and a resumed search would keep trials that the
uninterrupted search stops (seen with Ray 2.60). This subclass writes the rungs to a JSON
file after every result and reads them back when the restored search first calls it, so
a resumed search makes the decisions the uninterrupted one makes.

It reaches into ``AsyncHyperBandScheduler``'s brackets (``_brackets``, ``_rungs``), which
are not public API; ``tests/test_tune.py`` checks the resumed decisions.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ray.tune.schedulers import ASHAScheduler

from maml_rl.runio import atomic_write_text


class ResumableASHA(ASHAScheduler):
    """``ASHAScheduler`` keeping its rungs in ``state_file`` (other arguments: ASHA's)."""

    def __init__(self, state_file: str | Path, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.state_file = str(state_file)
        self._loaded = False

    def __getstate__(self) -> dict[str, Any]:
        # Tune pickles the scheduler with the tuner (tuner.pkl): a restored copy must read the file.
        return {**self.__dict__, "_loaded": False}

    def _load_once(self) -> None:
        if self._loaded:
            return
        self._loaded = True
        path = Path(self.state_file)
        if not path.is_file():
            return
        saved = json.loads(path.read_text())
        for bracket, rungs in zip(self._brackets, saved):
            bracket._rungs = [(milestone, dict(recorded)) for milestone, recorded in rungs]

    def _save(self) -> None:
        atomic_write_text(Path(self.state_file),
                          json.dumps([[[m, rec] for m, rec in bracket._rungs] for bracket in self._brackets]))

    def on_trial_add(self, tune_controller: Any, trial: Any) -> None:
        self._load_once()
        super().on_trial_add(tune_controller, trial)

    def on_trial_result(self, tune_controller: Any, trial: Any, result: dict) -> str:
        self._load_once()
        action = super().on_trial_result(tune_controller, trial, result)
        self._save()
        return action
