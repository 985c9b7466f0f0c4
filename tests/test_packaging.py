"""Dependencies tell the truth: every third-party import in the package is a declared runtime
dependency, or an optional one imported lazily (inside a function) next to a message that says
which extra to install. `tests/wheel_install_check.py` (``make wheel-test``) proves the same end to
end in a fresh venv; this test points at the offending line in a second."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from importlib.metadata import PackageNotFoundError, packages_distributions, requires
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


def _requirements(dist: str) -> set[str]:
    """``dist`` and the distributions it requires, transitively (those installed here)."""
    seen, todo = set(), [dist]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        try:
            reqs = requires(name) or []
        except PackageNotFoundError:
            continue
        todo.extend(_dist_names([r for r in reqs if "extra ==" not in r]))
    return seen


def _modules_of(dists: set[str]) -> set[str]:
    """Top-level import names provided by ``dists`` and what they require (as installed here)."""
    wanted = set().union(*(_requirements(d) for d in dists)) if dists else set()
    found = set()
    for module, owners in packages_distributions().items():
        if {o.lower().replace("_", "-") for o in owners} & wanted:
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


def _hinted(path: Path, extra: str) -> bool:
    """The install hint for ``extra`` is in ``path``, its package's ``__init__``, or a medsam2 module
    that ``path`` imports (a ``require_*`` guard called before the import)."""
    hint = f"medical-sam2[{extra}]"
    candidates = [path, path.parent / "__init__.py"]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").startswith("medsam2"):
            module = REPO / Path(*node.module.split("."))
            candidates += [module.with_suffix(".py"), module / "__init__.py"]
    return any(c.is_file() and hint in c.read_text() for c in candidates)


def _declared() -> tuple[set[str], dict[str, set[str]]]:
    project = _project()
    runtime = _modules_of(_dist_names(project["dependencies"]))
    extras = {
        name: _modules_of(_dist_names(reqs)) - runtime
        for name, reqs in project["optional-dependencies"].items()
    }
    return runtime, extras


def test_every_import_is_declared_and_optional_ones_come_with_an_install_hint() -> None:
    runtime, extras = _declared()
    problems = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(REPO)
        for module, line, _ in _imports(path):
            if module in runtime:
                continue
            extra = next((name for name, mods in extras.items() if module in mods), None)
            if extra is None:
                problems.append(f"{rel}:{line}: '{module}' is not a declared dependency (runtime or extra)")
            elif not _hinted(path, extra):
                problems.append(
                    f"{rel}:{line}: optional '{module}' without an 'install medical-sam2[{extra}]' hint"
                )
    assert not problems, "\n".join(problems)


_BLOCKER = """
import importlib.abc, sys
BLOCKED = set(sys.argv[1].split(","))
class Blocker(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {name!r} (blocked: not a runtime dependency)", name=name)
        return None
sys.meta_path.insert(0, Blocker())
from medsam2.cli.main import build_parser, main
commands = sorted(build_parser()._subparsers._group_actions[0].choices)
for command in commands:
    try:
        main([command, "--help"])
    except SystemExit as exc:
        assert exc.code == 0, (command, exc.code)
print(" ".join(commands))
"""


def test_every_command_starts_without_any_optional_dependency() -> None:
    """With every module that only an extra provides made unimportable, ``medsam2 CMD --help`` works
    for every command: optional imports are lazy."""
    runtime, extras = _declared()
    optional = set().union(*extras.values()) - runtime
    proc = subprocess.run(
        [sys.executable, "-c", _BLOCKER, ",".join(sorted(optional))],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "segment" in proc.stdout.split() and "demo" in proc.stdout.split()


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


_WITHOUT_DICOM_EXTRA = """
import importlib.abc, sys
class Blocker(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("pydicom", "highdicom"):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None
sys.meta_path.insert(0, Blocker())
from medsam2.cli.main import main
sys.exit(main(sys.argv[1:]))
"""


def test_dicom_seg_without_the_dicom_extra_says_what_to_install(tmp_path: Path) -> None:
    """The one feature that needs the ``dicom`` extra fails with a one-line install hint, writes nothing."""
    from data_files import pydicom_series_dir

    out = tmp_path / "seg.dcm"
    argv = ["segment", str(pydicom_series_dir()), "--point", "8,8,2", "--device", "cpu", "-o", str(out)]
    proc = subprocess.run(
        [sys.executable, "-c", _WITHOUT_DICOM_EXTRA, *argv],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=300,
    )
    lines = [ln for ln in proc.stderr.strip().splitlines() if not ln.startswith("medsam2: no --checkpoint")]
    assert proc.returncode == 2 and len(lines) == 1, proc.stderr
    assert lines[0].startswith("medsam2 segment: error: ") and "pip install 'medical-sam2[dicom]'" in lines[0]
    assert list(tmp_path.iterdir()) == []
