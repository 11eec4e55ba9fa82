"""Every Python and shell block of the README (and of the docs/ pages it moved its long
sections to) runs as written.

A block preceded by ``<!-- skip-test: reason -->`` is not run (the reason is in
the README beside it) but must still parse; one preceded by ``<!-- slow -->`` is
marked slow. Each block runs in a fresh
folder; shell blocks find ``idest`` and ``python`` of the interpreter running
the tests first on their PATH.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
#: The long forms of README sections, held to the same rule.
DOCS = [ROOT / "docs" / "capture.md", ROOT / "docs" / "scaling.md"]

#: A fenced block, with the HTML comment on the line before it if there is one.
BLOCK = re.compile(r"(?:<!--(?P<mark>[^\n]*?)-->\n)?^```(?P<lang>[\w-]*)\n(?P<code>.*?)^```$",
                   re.S | re.M)


def _blocks(path: Path) -> list:
    text = path.read_text()
    params = []
    for match in BLOCK.finditer(text):
        if match["lang"] not in ("python", "bash"):
            continue
        line = text.count("\n", 0, match.start("code")) + 1
        mark = (match["mark"] or "").strip()
        marks = [pytest.mark.slow] if mark == "slow" else []
        params.append(pytest.param(match["lang"], match["code"], mark, f"{path.name}:{line}",
                                   id=f"{path.name}:{line}", marks=marks))
    return params


ALL_BLOCKS = [block for path in [README, *DOCS] for block in _blocks(path)]
#: The blocks that run; those marked skip-test are only parsed.
BLOCKS = [b for b in ALL_BLOCKS if not b.values[2].startswith("skip-test:")]
NOT_RUN = [b for b in ALL_BLOCKS if b.values[2].startswith("skip-test:")]


def test_the_readme_has_blocks_and_every_mark_is_known():
    assert len(BLOCKS) >= 10
    for param in ALL_BLOCKS:
        lang, _, mark, line = param.values
        assert mark in ("", "slow") or (mark.startswith("skip-test:") and
                                        len(mark.removeprefix("skip-test:").strip()) > 10), \
            f"{line}: unknown mark or a skip without its reason: {mark!r}"


@pytest.mark.parametrize("lang, code, mark, line", NOT_RUN)
def test_blocks_not_run_still_parse(lang, code, mark, line):
    """A block too long or too special for CI is at least valid Python or bash."""
    if lang == "python":
        compile(code, line, "exec")
        return
    done = subprocess.run(["bash", "-n", "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, f"{line} does not parse:\n{done.stderr}"


def test_quickstart_is_ten_lines_or_fewer():
    text = README.read_text()
    quick = text[text.index("## Quickstart"):text.index("\n## ", text.index("## Quickstart") + 3)]
    code = [line for match in BLOCK.finditer(quick) for line in match["code"].splitlines()
            if line.strip()]
    assert len(code) <= 10, code


@pytest.fixture
def shell_path(tmp_path_factory) -> str:
    """A PATH whose ``idest`` and ``python`` are those of this interpreter."""
    bin_dir = tmp_path_factory.mktemp("bin")
    scripts = {"python": f'#!/bin/sh\nexec "{sys.executable}" "$@"\n',
               "idest": f"#!{sys.executable}\nimport sys\nfrom idest.cli import main\n"
                        "sys.exit(main())\n"}
    for name, text in scripts.items():
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    return f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"


@pytest.mark.parametrize("lang, code, mark, line", BLOCKS)
def test_block_runs(lang, code, mark, line, tmp_path, monkeypatch, shell_path):
    monkeypatch.chdir(tmp_path)
    if lang == "python":
        exec(compile(code, line, "exec"), {"__name__": "__readme__"})
        return
    env = {**os.environ, "PATH": shell_path, "HF_HUB_OFFLINE": "1"}
    done = subprocess.run(["bash", "-euo", "pipefail", "-c", code], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, f"{line} failed:\n{done.stdout}\n{done.stderr}"


def test_the_architecture_map_names_every_room():
    """The README's map and the import contract of tests/test_architecture.py agree."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("architecture", ROOT / "tests" /
                                                  "test_architecture.py")
    contract = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(contract)
    text = README.read_text()
    start = text.index("## Architecture")
    section = text[start:text.index("\n## ", start + 3)]
    assert all(f"`{room}`" in section for room in contract.ALLOWED), \
        [room for room in contract.ALLOWED if f"`{room}`" not in section]
