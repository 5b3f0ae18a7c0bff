"""The README's configuration table documents every setting."""

from __future__ import annotations

import re
from pathlib import Path

from emulator.settings import Settings

README = Path(__file__).resolve().parents[1] / "README.md"


def test_every_setting_has_a_row() -> None:
    """Each Settings field is named in the second column of the options table."""
    text = README.read_text(encoding="utf-8")
    table = text[text.index("| option (flag) | field |") :].split("\n\n", 1)[0]
    documented = {
        name
        for row in table.splitlines()[2:]
        for name in re.findall(r"`([a-z_0-9]+)", row.split("|")[2])
    }
    assert set(Settings.model_fields) - documented == set()
