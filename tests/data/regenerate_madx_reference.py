"""Rebuild ``tests/data/madx_reference.json`` (development tool, not used by the tests).

The test data holds MAD-X results for the TT43 model of this project:

* everything of the team's ``madx_reference.json`` (nominal optics and 11 random tasks,
  the uncoupled nominal twiss, the earlier implementation's response matrices), and
* the full 4x4 transfer map from the start of the line to ``plasma_merge`` on the nominal
  optics (checks the sign convention of the tilted bend's x-y coupling), computed here
  with cpymad on the design orbit (bend k0 = angle / L).

Usage (needs ``pip install cpymad`` and the MAD-X files of the line)::

    python tests/data/regenerate_madx_reference.py SOURCE_JSON MADX_DIR
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def full_map(madx_dir: Path) -> list[list[float]]:
    from cpymad.madx import Madx

    madx = Madx(stdout=False)
    madx.call(str(madx_dir / "electron_design.mad"), chdir=True)
    for bend in ("mbawv.430100", "mbawv.430200", "mbawh.430300", "mbawh.412343"):
        madx.input(f"{bend}, k0 := {bend}->angle / {bend}->l;")
    madx.input("use, sequence=tt43, range=#s/plasma_merge;")
    table = madx.twiss(betx=5, bety=5, alfx=0, alfy=0, rmatrix=True)
    row = list(table.name).index("plasma_merge:1")
    return [[float(table[f"re{a}{b}"][row]) for b in range(1, 5)] for a in range(1, 5)]


def main(source: str, madx_dir: str) -> None:
    data = json.loads(Path(source).read_text())
    data["nominal_map_to_plasma_merge"] = full_map(Path(madx_dir))
    out = Path(__file__).with_name("madx_reference.json")
    out.write_text(json.dumps(data, indent=1))
    print(f"wrote {out}")


if __name__ == "__main__":
    main(*sys.argv[1:3])
