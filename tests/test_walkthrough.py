"""docs/architecture.md's "Adding an experiment" walkthrough cannot drift from its example: every code block of
the document is an excerpt copied from a named file, the example's core module stays under 200 lines, and the
sizes the walkthrough gives are the files' own."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "architecture.md"
EXAMPLE = ROOT / "tests" / "data" / "plugin_example" / "wna_noise_votes"
CORE_LIMIT = 200  # lines of core code an experiment needs, at most (issue 23)

# `<!-- excerpt: path -->` on the line before a code block names the file it is copied from.
MARK = re.compile(r"<!-- excerpt: (?P<path>\S+) -->")


def _walkthrough() -> str:
    text = DOC.read_text(encoding="utf-8")
    start = text.index("## Adding an experiment, step by step")
    return text[start:text.index("\n## ", start + 1)]


def _blocks(text: str) -> list[tuple[str | None, str]]:
    """(source path or None, code) of every fenced block that names a language (```python, ```toml)."""
    found = []
    lines = text.splitlines()
    index = 0
    while index < len(lines):
        if lines[index].startswith("```") and lines[index] != "```":
            end = lines.index("```", index + 1)
            mark = MARK.fullmatch(lines[index - 1].strip()) if index else None
            found.append((mark.group("path") if mark else None, "\n".join(lines[index + 1:end])))
            index = end
        elif lines[index] == "```":  # a plain block (the file tree): skipped whole
            index = lines.index("```", index + 1)
        index += 1
    return found


def _lines(path: Path) -> int:
    return len(path.read_text(encoding="utf-8").splitlines())


def test_every_code_block_of_the_architecture_document_is_copied_verbatim_from_its_file():
    blocks = _blocks(DOC.read_text(encoding="utf-8"))
    assert blocks, "the document shows no code"
    unsourced = [code.splitlines()[0] for path, code in blocks if path is None]
    assert unsourced == [], "a code block needs `<!-- excerpt: path -->` on the line before it"
    drifted = [f"{path}: {code.splitlines()[0]!r}" for path, code in blocks
               if code not in (ROOT / path).read_text(encoding="utf-8")]
    assert drifted == [], "these excerpts no longer occur verbatim in their files"


def test_the_walkthrough_covers_every_step_from_its_example():
    sources = [path for path, _ in _blocks(_walkthrough())]
    core = str((EXAMPLE / "__init__.py").relative_to(ROOT))
    assert sources.count(core) >= 4  # config, state, experiment, declaration
    assert str((EXAMPLE / "panel.py").relative_to(ROOT)) in sources
    assert "tests/data/plugin_example/pyproject.toml" in sources  # the entry point


def test_the_example_stays_under_200_lines_of_core_code_and_the_walkthrough_says_its_sizes():
    core, panel = _lines(EXAMPLE / "__init__.py"), _lines(EXAMPLE / "panel.py")
    assert core < CORE_LIMIT
    said = re.search(r"is (\d+) lines and its panel (\d+)", " ".join(_walkthrough().split()))
    assert said is not None and (int(said.group(1)), int(said.group(2))) == (core, panel)
