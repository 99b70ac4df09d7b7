"""Regenerate the README's configuration table from the Settings model."""
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from replaylens.config.settings import settings_markdown  # noqa: E402

START, END = "<!-- settings-table:start -->", "<!-- settings-table:end -->"
readme = ROOT / "README.md"
text = readme.read_text()
new = re.sub(re.escape(START) + ".*?" + re.escape(END), lambda _m: f"{START}\n{settings_markdown()}\n{END}",
             text, flags=re.S)
readme.write_text(new)
print("README configuration table", "updated" if new != text else "already current")
