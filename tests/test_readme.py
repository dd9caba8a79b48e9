"""The README's configuration table is the Settings class: every variable, and only those, in it."""

from __future__ import annotations

import re
from pathlib import Path

from service.config import Settings

README = Path(__file__).parent.parent / "README.md"


def test_every_setting_is_in_the_readme_table_and_nothing_else() -> None:
    """Each Settings field appears as a `| `VARIABLE` | default | meaning |` row; the table names no other."""
    section = README.read_text().split("## Configuration", 1)[1].split("\n## ", 1)[0]
    documented = set(re.findall(r"^\| `([A-Z_]+)` \|", section, flags=re.MULTILINE))
    assert documented == {name.upper() for name in Settings.model_fields}
