"""Unit tests for pipeline.config.settings_table: the README's settings table, from the field descriptions."""

from __future__ import annotations

import pytest

from pipeline.config.fields import SettingsError
from pipeline.config.settings_table import README_BEGIN, README_END, readme_with_table


def test_readme_table_is_rewritten_between_its_markers():
    text = f"intro\n{README_BEGIN}\nold table\n{README_END}\nrest\n"
    out = readme_with_table(text)
    assert out.startswith(f"intro\n{README_BEGIN}\n| variable | default | meaning |")
    assert out.endswith(f"{README_END}\nrest\n") and "old table" not in out
    assert readme_with_table(out) == out
    with pytest.raises(SettingsError):
        readme_with_table("no markers")
