"""The line between the library and the experiment, checked like code.

dml_core is the library (pytorch-metric-learning's side of the line): it imports no Ray,
Prefect, MLflow or Optuna, holds no comparison of ours, and never imports the experiment
(dml_experiment) or its Prefect layer (flows). Every function of the three packages fits
on a screen: at most 80 lines, docstring excluded.
"""
from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("dml_core", "dml_experiment", "flows")
ORCHESTRATION = ("ray", "prefect", "mlflow", "optuna")
MAX_LINES = 80


def sources(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


def imported_roots(path: Path) -> set[str]:
    """Top-level names of every absolute import in the file, at any depth (lazy ones too)."""
    roots = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            roots |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
    return roots


@pytest.mark.parametrize("path", sources("dml_core"), ids=lambda p: str(p.relative_to(ROOT)))
def test_the_library_imports_neither_orchestration_nor_the_experiment(path):
    bad = imported_roots(path) & {*ORCHESTRATION, "dml_experiment", "flows"}
    assert not bad, f"{path.relative_to(ROOT)} imports {sorted(bad)}"


def test_importing_every_library_module_loads_no_orchestration():
    """In a fresh interpreter: import every dml_core module, then look at sys.modules."""
    script = (
        "import importlib, pkgutil, sys, dml_core\n"
        "for m in pkgutil.walk_packages(dml_core.__path__, 'dml_core.'):\n"
        "    if not m.name.endswith('__main__'): importlib.import_module(m.name)\n"
        f"print(sorted({{k.split('.')[0] for k in sys.modules}} & {set(ORCHESTRATION) | {'dml_experiment', 'flows'}!r}))\n"
    )
    out = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "[]", out.stdout


def test_no_comparison_id_in_the_library():
    """C1-C9 are the experiment's claims (params.yaml, dml_experiment.report), not the library's."""
    found = [f"{p.relative_to(ROOT)}:{i}" for p in sources("dml_core")
             for i, line in enumerate(p.read_text().splitlines(), 1) if re.search(r"\bC[1-9]\b", line)]
    assert not found, found


def test_the_experiment_never_imports_flows():
    found = [str(p.relative_to(ROOT)) for p in sources("dml_experiment") if "flows" in imported_roots(p)]
    assert not found, found


def package_imports(package: str) -> set[str]:
    """The sibling packages that `package` imports, relative imports resolved to itself."""
    return {r for p in sources(package) for r in imported_roots(p)} & set(PACKAGES) - {package}


def test_no_package_level_import_loop():
    """dml_core <- dml_experiment <- flows, and nothing the other way."""
    assert package_imports("dml_core") == set()
    assert package_imports("dml_experiment") == {"dml_core"}
    assert package_imports("flows") <= {"dml_core", "dml_experiment"}


def long_functions(path: Path) -> list[str]:
    """Functions longer than MAX_LINES lines, their docstring not counted."""
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        start = node.decorator_list[0].lineno if node.decorator_list else node.lineno
        lines = node.end_lineno - start + 1
        doc = node.body[0] if node.body and isinstance(node.body[0], ast.Expr) else None
        if doc is not None and isinstance(doc.value, ast.Constant) and isinstance(doc.value.value, str):
            lines -= doc.end_lineno - doc.lineno + 1
        if lines > MAX_LINES:
            out.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name} ({lines} lines)")
    return out


def test_no_function_over_80_lines():
    found = [f for pkg in PACKAGES for p in sources(pkg) for f in long_functions(p)]
    assert not found, found


def test_the_length_check_counts_code_and_skips_the_docstring(tmp_path):
    body = "\n".join(f"    x{i} = {i}" for i in range(MAX_LINES - 1))
    doc = '    """A docstring\n    of three\n    lines."""\n'
    fits = tmp_path / "fits.py"
    fits.write_text(f"def f():\n{doc}{body}\n")
    over = tmp_path / "over.py"
    over.write_text(f"def f():\n{doc}{body}\n    x = 1\n")
    global ROOT
    root, ROOT = ROOT, tmp_path
    try:
        assert long_functions(fits) == []
        assert long_functions(over) == [f"over.py:1 f ({MAX_LINES + 1} lines)"]
    finally:
        ROOT = root
