"""The README documents every setting: its generated tables match the settings classes."""

from __future__ import annotations

from shared.config.docs import README, render


def test_readme_settings_tables_are_current() -> None:
    assert render() in README.read_text(), "run `python -m shared.config.docs --write` and commit README.md"


def test_every_field_has_a_description() -> None:
    from shared.config.docs import settings_classes

    missing = [
        f"{cls.__name__}.{name}"
        for cls in settings_classes()
        for name, field in cls.model_fields.items()
        if not field.description
    ]
    assert missing == []
