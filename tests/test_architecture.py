"""The import contract of the layout (README, "Architecture"), checked on the source.

* ``idest`` never imports ``scaling``;
* no module imports a private (underscore) module or name of another package;
* each idest stage imports only the stages below it.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

#: Which idest stages each stage may import (besides itself).
ALLOWED = {
    "idest.utils": set(),
    "idest.neighbors": {"idest.utils"},
    "idest.datasets": {"idest.utils", "idest.neighbors"},
    "idest.io": {"idest.utils"},
    "idest.estimators": {"idest.utils", "idest.neighbors"},
    "idest.activations": {"idest.utils"},
    "idest.scan": {"idest.utils", "idest.neighbors", "idest.estimators", "idest.activations"},
    "idest.cli": {"idest.utils", "idest.neighbors", "idest.estimators", "idest.activations",
                  "idest.scan", "idest.io", "idest.datasets", "idest"},
    "scaling.fit": set(),
}


def _modules(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _imports(path: Path) -> list[tuple[str, list[str], int]]:
    """(module, imported names, line) of every import in a file, relative ones resolved."""
    tree = ast.parse(path.read_text(), str(path))
    package = _module_name(path).rsplit(".", 1)[0] if path.name != "__init__.py" \
        else _module_name(path)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(a.name, [], node.lineno) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join(base + ([module] if module else []))
            found.append((module, [a.name for a in node.names], node.lineno))
    return found


def _stage(module: str) -> str:
    """The stage a module belongs to: ``idest.neighbors._knn`` -> ``idest.neighbors``."""
    parts = module.split(".")
    return ".".join(parts[:2]) if len(parts) > 1 else parts[0]


def _owner(module: str) -> str:
    """The package that owns a private module: everything before its first private part."""
    parts = module.split(".")
    for i, part in enumerate(parts):
        if part.startswith("_") and not part.startswith("__"):
            return ".".join(parts[:i])
    return module


SOURCES = _modules("idest") + _modules("scaling")


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(ROOT)))
def test_import_contract(path: Path) -> None:
    me = _module_name(path)
    problems = []
    for module, names, line in _imports(path):
        if not module.startswith(("idest", "scaling")):
            continue
        where = f"{path.relative_to(ROOT)}:{line}"
        if me.startswith("idest") and module.startswith("scaling"):
            problems.append(f"{where}: idest imports scaling ({module})")
        package = _owner(module)
        if package != module and not me.startswith(package + ".") and me != package:
            problems.append(f"{where}: imports private module {module} of {package}")
        private = [n for n in names if n.startswith("_") and not n.startswith("__")]
        # private names are shared only inside the package that owns them
        home = package
        if private and not (me == home or me.startswith(home + ".")):
            problems.append(f"{where}: imports private names {private} from {module}")
        if me.startswith("scaling") and module.startswith("idest") and module not in (
                "idest", "idest.utils", "idest.neighbors", "idest.estimators",
                "idest.activations", "idest.datasets", "idest.io", "idest.scan", "idest.cli"):
            problems.append(f"{where}: scaling imports {module}, not a public idest package")
        stage, target = _stage(me), _stage(module)
        if stage in ALLOWED and target != stage and module.startswith(("idest", "scaling.fit")):
            if target not in ALLOWED[stage] and not (stage == "scaling.fit" and
                                                     module.startswith("scaling.fit")):
                problems.append(f"{where}: {stage} may not import {target}")
    assert not problems, "\n".join(problems)


def test_fitting_library_is_light() -> None:
    """``import scaling.fit`` needs numpy and scipy only (README: "scaling.fit")."""
    code = ("import sys, scaling.fit; heavy = [m for m in ('numba', 'sklearn', 'torch', 'idest')"
            " if m in sys.modules]; print(','.join(heavy))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=ROOT)
    assert out.stdout.strip() == "", f"import scaling.fit loaded: {out.stdout.strip()}"


def test_idest_knows_nothing_of_scaling() -> None:
    code = "import sys, idest, idest.cli, idest.scan; print('scaling' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=ROOT)
    assert out.stdout.strip() == "False"
