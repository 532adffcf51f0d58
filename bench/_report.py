"""Shared by the benchmarks: the provenance line, and rewriting one section of docs/benchmarks.md."""

from __future__ import annotations

import os
import platform
import re
import shlex
import sys
from datetime import datetime, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DOC = REPO / "docs" / "benchmarks.md"
HEADER = """# Benchmarks

Written by the scripts in `bench/` (`make bench` the quick ones, `make bench-long` the rest); each section below is
rewritten by the script it names. The machines are shared and noisy, so every figure that
compares two things is a ratio of the two measured side by side, interleaved, in one run.
"""


def provenance() -> str:
    """The command, date and machine a section came from."""
    command = " ".join([".venv/bin/python", *map(shlex.quote, [os.path.relpath(sys.argv[0], REPO), *sys.argv[1:]])])
    now = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return (f"Produced by `{command}` on {now}; machine: {os.cpu_count()} cores (nproc), "
            f"Python {platform.python_version()}, {platform.system()} {platform.machine()}.")


def write_section(name: str, markdown: str) -> None:
    """Print ``markdown`` and put it between ``<!-- name:start -->`` and ``<!-- name:end -->``."""
    print(markdown)
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    block = f"{start}\n{markdown.strip()}\n{end}"
    text = DOC.read_text(encoding="utf-8") if DOC.exists() else HEADER
    pattern = re.compile(re.escape(start) + r".*?" + re.escape(end), re.S)
    text = pattern.sub(lambda _: block, text) if pattern.search(text) else f"{text.rstrip()}\n\n{block}\n"
    DOC.parent.mkdir(parents=True, exist_ok=True)
    DOC.write_text(text, encoding="utf-8")
