"""The documentation's Python examples run: every ```python block of README.md and docs/*.md.

The blocks of one file run in order in one namespace (a later block may use what an earlier one
defined), inside a fresh temporary directory; each file is one test case named after it. A failing
block is reported with its file, its number and its line in the file (the traceback's line numbers
are the Markdown file's own).

A block that needs an optional package says so on a line of its own, ``# requires: torch`` (several
names separated by commas); without the package the block is skipped and the file's remaining
blocks still run; the test then reports a skip naming the blocks left out."""
from __future__ import annotations

import importlib.util
import re
import traceback
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
BLOCK = re.compile(r"^```python[ \t]*\n(.*?)^```[ \t]*$", re.S | re.M)
REQUIRES = re.compile(r"^#\s*requires:\s*(.+?)\s*$", re.M)


def python_blocks(text: str):
    """(number, first line, source) of every ```python block, numbered from 1; lines count from 1."""
    for number, m in enumerate(BLOCK.finditer(text), 1):
        yield number, text.count("\n", 0, m.start(1)) + 1, m.group(1)


# the pages that have python blocks: one test case each
FILES = [p for p in PAGES if BLOCK.search(p.read_text(encoding="utf-8"))]


def missing_packages(source: str) -> list:
    names = [n.strip() for line in REQUIRES.findall(source) for n in line.split(",") if n.strip()]
    return [n for n in names if importlib.util.find_spec(n) is None]


def test_readme_and_docs_have_examples():
    assert (ROOT / "README.md") in FILES and len(FILES) > 1


@pytest.mark.parametrize("path", FILES, ids=[str(p.relative_to(ROOT)) for p in FILES])
def test_python_blocks_run(path, tmp_path, monkeypatch):
    name = str(path.relative_to(ROOT))
    blocks = list(python_blocks(path.read_text(encoding="utf-8")))
    monkeypatch.chdir(tmp_path)
    namespace = {"__name__": f"docs_{path.stem}"}
    skipped = []
    for number, line, source in blocks:
        missing = missing_packages(source)
        if missing:
            skipped.append(f"block {number} (line {line}) needs {', '.join(missing)}")
            continue
        # Leading newlines put the block's code at its own line numbers in the file.
        code = compile("\n" * (line - 1) + source, str(path), "exec")
        error = None
        try:
            exec(code, namespace)
        except Exception:
            error = traceback.format_exc()
        if error is not None:
            pytest.fail(f"{name}: python block {number} (line {line}) failed:\n{error}", pytrace=False)
    if skipped:
        pytest.skip(f"{name}: ran {len(blocks) - len(skipped)} of {len(blocks)} blocks; " + "; ".join(skipped))
