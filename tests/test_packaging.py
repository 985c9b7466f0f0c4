"""Dependencies tell the truth: every third-party import in the package is a declared runtime
dependency, or an optional one imported lazily (inside a function) next to a message that says
which extra to install. `tests/wheel_install_check.py` (``make wheel-test``) proves the same end to
end in a fresh venv; this test points at the offending line in a second."""

from __future__ import annotations

import ast
import re
import sys
from importlib.metadata import packages_distributions
from pathlib import Path

import tomllib

REPO = Path(__file__).resolve().parent.parent
PACKAGE = REPO / "medsam2"


def _project() -> dict:
    return tomllib.loads((REPO / "pyproject.toml").read_text())["project"]


def _dist_names(requirements: list[str]) -> set[str]:
    return {
        re.split(r"[<>=!~;\[ ]", r, maxsplit=1)[0].strip().lower().replace("_", "-") for r in requirements
    }


def _modules_of(dists: set[str]) -> set[str]:
    """Top-level import names provided by the distributions ``dists`` (as installed here)."""
    found = set()
    for module, owners in packages_distributions().items():
        if {o.lower().replace("_", "-") for o in owners} & dists:
            found.add(module)
    return found


def _imports(path: Path) -> list[tuple[str, int, bool]]:
    """(top-level module, line, imported at module level) for each absolute third-party import."""
    tree = ast.parse(path.read_text())
    top_nodes = set(map(id, tree.body))
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        else:
            continue
        for name in names:
            top = name.split(".")[0]
            if top not in sys.stdlib_module_names and top != "medsam2":
                out.append((top, node.lineno, id(node) in top_nodes))
    return out


def test_every_import_is_declared_or_lazy_with_an_install_hint() -> None:
    project = _project()
    runtime = _modules_of(_dist_names(project["dependencies"]))
    extras = {
        name: _modules_of(_dist_names(reqs))
        for name, reqs in project["optional-dependencies"].items()
    }
    problems = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(REPO)
        for module, line, eager in _imports(path):
            if module in runtime:
                continue
            extra = next((name for name, mods in extras.items() if module in mods), None)
            if extra is None:
                problems.append(f"{rel}:{line}: '{module}' is not a declared dependency of any extra")
            elif eager:
                problems.append(f"{rel}:{line}: optional '{module}' ([{extra}]) is imported at module level")
            elif f"medical-sam2[{extra}]" not in path.read_text():
                problems.append(
                    f"{rel}:{line}: lazy '{module}' without an 'install medical-sam2[{extra}]' hint"
                )
    assert not problems, "\n".join(problems)


def test_runtime_dependencies_include_what_the_demo_needs() -> None:
    """scipy (phantom generation for `medsam2 demo`) was once only pulled in by the dev extra."""
    assert "scipy" in _dist_names(_project()["dependencies"])


def test_make_demo_does_not_install_the_dev_extra() -> None:
    makefile = (REPO / "Makefile").read_text()
    demo = re.search(r"^demo:\s*(\S+)", makefile, re.M)
    assert demo is not None, "no demo rule"
    rule = re.search(rf"^{re.escape(demo.group(1))}:.*?(?=^\S|\Z)", makefile, re.M | re.S)
    assert rule is not None, f"no rule builds {demo.group(1)}"
    recipe = rule.group(0)
    assert "dev" not in recipe and "$(STAMP)" not in recipe, recipe
    assert "torch==2.13.0" in recipe and "pip install" in recipe, recipe
