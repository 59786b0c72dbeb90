"""Regenerate the README's generated tables in place.

    .venv/bin/python docs/readme_tables.py

Each table sits between `<!-- generated: NAME -->` and `<!-- /generated -->`
and is the output of the `mobilenets` command named in `TABLES`, so the README
shows what the tool computes, not numbers copied from a paper.
"""

import re
import subprocess
import sys
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"

TABLES = {
    "zoo-v1": ["zoo", "--version", "v1", "--format", "md"],
    "zoo-v2": ["zoo", "--version", "v2", "--format", "md"],
    "zoo-v3": ["zoo", "--version", "v3", "--format", "md"],
    "zoo-v4": ["zoo", "--version", "v4", "--format", "md"],
}


def generate(name: str) -> str:
    cmd = [sys.executable, "-m", "mobilenets", *TABLES[name]]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return f"`mobilenets {' '.join(TABLES[name])}`\n\n{out}"


def main() -> None:
    text = README.read_text()
    for name in TABLES:
        pattern = re.compile(rf"(<!-- generated: {re.escape(name)} -->\n).*?(<!-- /generated -->)", re.S)
        if not pattern.search(text):
            raise SystemExit(f"README has no block for {name}")
        text = pattern.sub(lambda m: m.group(1) + generate(name) + m.group(2), text)
    README.write_text(text)


if __name__ == "__main__":
    main()
