"""Regenerate the README's "Which MobileNet? (measured here)" tables in place.

    .venv/bin/python docs/compare_tables.py [--out DIR]

Each table sits between `<!-- generated: NAME -->` and `<!-- /generated -->`
and is the output of the `mobilenets compare` command shown above it, run on
this machine: real conversions and LiteRT timings, so it takes minutes. The
measurements are cached in `--out` (default `build/compare-readme`, which
git ignores); pointing it at the folder of an earlier, larger comparison
(e.g. the full V1 grid) reuses its timings instead of measuring again.
"""

import argparse
import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"

TABLES = {
    "compare-v1-v2": ["compare", "v1-1.00-224", "v2-1.00-224", "--threads", "1,2", "--repeats", "5",
                      "--format", "md"],
    "compare-v1-alpha": ["compare", "--grid", "v1:1.0,0.75,0.5,0.25:224", "--threads", "1,2",
                         "--repeats", "5", "--format", "md"],
    "compare-v1-resolution": ["compare", "--grid", "v1:1.0:224,192,160,128", "--threads", "1,2",
                              "--repeats", "5", "--format", "md"],
}


def generate(name: str, out: Path) -> str:
    args = TABLES[name]
    cmd = [sys.executable, "-m", "mobilenets", *args, "--out", str(out), "--no-report"]
    table = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    env = environment(out)
    shown = " ".join(shlex.quote(a) for a in args)
    return f"`mobilenets {shown}`\n\n{table}\n{env}\n"


def environment(out: Path) -> str:
    """One line: where and when the latencies were measured."""
    from mobilenets.report import environment as env_of

    rows = json.loads((out / "results.json").read_text())["rows"]
    env = env_of([1, 2], rows)
    when = env.get("latencies measured", "")[:10]
    cores = env["cores"].split()[0]
    return (f"Measured on {env['CPU']} ({cores} cores), LiteRT {env['LiteRT (ai-edge-litert)']}, "
            f"TensorFlow {env['TensorFlow']}, {when}: the lowest of 5 p50s (50 calls each, batch 1, "
            f"random weights); {env.get('load while measuring', 'load not recorded')}.")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "build" / "compare-readme",
                        help="measurement cache (default build/compare-readme)")
    args = parser.parse_args()
    text = README.read_text()
    for name in TABLES:
        pattern = re.compile(rf"(<!-- generated: {re.escape(name)} -->\n).*?(<!-- /generated -->)", re.S)
        if not pattern.search(text):
            raise SystemExit(f"README has no block for {name}")
        block = generate(name, args.out)
        text = pattern.sub(lambda m: m.group(1) + block + m.group(2), text)
    README.write_text(text)


if __name__ == "__main__":
    main()
