"""The README stays true: its settings table, commands and topics match the code."""
import re
from pathlib import Path

from replaylens.cli import build_parser
from replaylens.config.settings import Settings, settings_markdown

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()


def test_settings_table_is_current():
    assert settings_markdown() in README, "run: python scripts/update_readme.py"


def test_every_cli_command_is_documented():
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    for name in sub.choices:
        assert f"replaylens {name}" in README, name


def test_every_topic_default_is_documented():
    s = Settings()
    for name, value in s.model_dump().items():
        if name.startswith("topic_") and isinstance(value, str):
            assert f"`{value}`" in README, value


def test_readme_starts_with_the_two_commands():
    head = README.split("##", 1)[0]
    assert re.search(r"make run", head) and re.search(r"make test", head)
