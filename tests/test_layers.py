"""The house layout: every import in `analysis/` and `dashboard/` points down the layers, never up.

`analysis.knowledge` ← `taxonomy` ← `store` ← `inference` ← the CLI (`cli`, `info`, `__main__`); `paths` and
`errors` sit under everything and import nothing of the project. The dashboard reads through the library but
never runs models (only its Run page imports `analysis.inference`), and `analysis/` never imports Streamlit.
Imports inside functions count as much as those at the top of a module.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from analysis import paths

ROOT = paths.ROOT
# Rank of each part of `analysis`: a module may import its own rank or lower.
RANKS = {"paths": 0, "errors": 0, "knowledge": 1, "taxonomy": 2, "store": 3, "inference": 4,
         "cli": 5, "info": 5, "__main__": 5}
LAYER_NAMES = {0: "the base (paths, errors)", 1: "knowledge", 2: "taxonomy", 3: "store", 4: "inference", 5: "the CLI"}
DASHBOARD_RUN_PAGE = "dashboard/app_pages/run.py"


def imported_modules(source: str, module: str) -> list[tuple[int, str]]:
    """(line, dotted module) of every import in `source`, relative imports resolved against `module`."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                package = module.split(".")[: -node.level]
                base = ".".join(package + ([base] if base else []))
            # `from analysis import store` imports the module analysis.store, not a name of analysis
            found += [(node.lineno, f"{base}.{alias.name}" if base in ("analysis", "dashboard") else base)
                      for alias in node.names]
    return found


def part_of(dotted: str) -> str | None:
    """The layer part of an `analysis.…` module name (`analysis.store.views` -> `store`), else None."""
    parts = dotted.split(".")
    if parts[0] != "analysis" or len(parts) < 2:
        return None
    return parts[1]


def _module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    names = list(rel.parts)
    if names[-1] == "__init__":
        names.pop()
    return ".".join(names)


def layer_violations(path: Path, source: str) -> list[str]:
    """Every import of `source` (the file at `path`) that breaks the layering, as 'file:line: message'."""
    rel = path.relative_to(ROOT).as_posix()
    module = _module_name(path)
    problems = []
    for line, target in imported_modules(source, module):
        where = f"{rel}:{line}"
        top = target.split(".")[0]
        if module.startswith("analysis"):
            if top == "streamlit":
                problems.append(f"{where}: imports streamlit; analysis/ never imports the dashboard's toolkit")
            if top == "dashboard":
                problems.append(f"{where}: imports {target}; analysis/ never imports the dashboard")
            here, there = part_of(module), part_of(target)
            if there is None or here is None or here == there:
                continue
            if there not in RANKS:
                problems.append(f"{where}: imports {target}, which is in no layer (add it to a package)")
            elif RANKS[there] > RANKS[here]:
                problems.append(f"{where}: {module} ({LAYER_NAMES[RANKS[here]]}) imports {target} "
                                f"({LAYER_NAMES[RANKS[there]]}), an upward import")
        elif module.startswith("dashboard"):
            there = part_of(target)
            if there == "inference" and rel != DASHBOARD_RUN_PAGE:
                problems.append(f"{where}: imports {target}; only the Run page ({DASHBOARD_RUN_PAGE}) runs models")
            elif there in ("cli", "info", "__main__"):
                problems.append(f"{where}: imports {target}; the dashboard calls the library, not the CLI")
    return problems


def _sources() -> list[Path]:
    return sorted([*(ROOT / "analysis").rglob("*.py"), *(ROOT / "dashboard").rglob("*.py")])


def test_the_tree_has_the_four_layers_and_nothing_else_at_the_top():
    top = sorted(p.name for p in (ROOT / "analysis").glob("*.py"))
    assert top == ["__init__.py", "__main__.py", "cli.py", "errors.py", "info.py", "paths.py"]
    packages = sorted(p.name for p in (ROOT / "analysis").iterdir() if p.is_dir() and p.name != "__pycache__")
    assert packages == ["inference", "knowledge", "store", "taxonomy"]
    for name in packages:
        init = ROOT / "analysis" / name / "__init__.py"
        doc = ast.get_docstring(ast.parse(init.read_text()))
        assert doc and "import" in doc.lower(), f"{init} needs a docstring saying what lives there and what it may import"


def test_no_module_imports_upward_or_streamlit():
    problems = [p for path in _sources() for p in layer_violations(path, path.read_text())]
    assert problems == [], "\n".join(problems)


def test_the_base_modules_import_nothing_of_the_project():
    for name in ("paths", "errors"):
        path = ROOT / "analysis" / f"{name}.py"
        project = [t for _, t in imported_modules(path.read_text(), f"analysis.{name}") if t.startswith("analysis")]
        assert project == [], f"{path} imports {project}"


@pytest.mark.parametrize("module_path, line, message", [
    ("analysis/knowledge/classes.py", "from analysis.store import database", "upward import"),
    ("analysis/knowledge/wordnet.py", "    from analysis.taxonomy import classify", "upward import"),  # inside a function
    ("analysis/taxonomy/classify.py", "from analysis.inference.runner import predict", "upward import"),
    ("analysis/store/views.py", "from analysis import cli", "upward import"),
    ("analysis/store/export.py", "from ..inference import models", "upward import"),  # relative
    ("analysis/taxonomy/metrics.py", "import streamlit as st", "imports streamlit"),
    ("analysis/store/queries.py", "from dashboard import db", "never imports the dashboard"),
    ("dashboard/app_pages/browse.py", "from analysis.inference import runner", "only the Run page"),
])
def test_an_added_upward_import_is_caught(module_path, line, message):
    path = ROOT / module_path
    source = path.read_text()
    assert not layer_violations(path, source)
    body = f"def _probe():\n{line}\n" if line.startswith(" ") else f"{line}\n"
    problems = layer_violations(path, source + "\n" + body)
    assert len(problems) == 1 and message in problems[0], problems


def test_downward_and_sideways_imports_are_allowed():
    path = ROOT / "analysis" / "store" / "views.py"
    source = path.read_text() + "\nfrom analysis.knowledge import wordnet\nfrom analysis.store import queries\n"
    assert layer_violations(path, source) == []
    run_page = ROOT / DASHBOARD_RUN_PAGE
    assert layer_violations(run_page, run_page.read_text()) == []
