"""The package layout reads as the data flow, and its dependencies point one way.

Every module's imports are parsed (ast, nothing is imported) and checked against :data:`ALLOWED`:
a package may import itself and the packages listed for it, nothing else of mirage. Lowest first:

    errors < {progress, memory} < schema < {metrics, stats} < model < analysis < report < io
           < {evaluate, train, vision, synthetic} < {api, demo, mirage (the public API)} < cli

(``stats`` may use ``model``'s pure law; ``model`` uses only ``schema``). The exceptions, each
because the package computes a table itself: ``train`` -> ``stats`` (the emergence score and jump
share of its quick evaluation, ``sharpness_summary``) and ``vision`` -> ``stats`` (the emergence
table of its scores). A function may import only optional heavy dependencies
(:data:`OPTIONAL_HEAVY`), each with a comment saying why; there are no import cycles at module level.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parent.parent / "src" / "mirage"

# package -> the mirage packages it may import (besides itself)
ALLOWED: dict[str, set[str]] = {
    "errors": set(),
    "progress": set(),  # progress on stderr: bars on a terminal, lines in a file (any layer's long work)
    "memory": set(),  # freed heap returned to the OS between large steps (glibc malloc_trim)
    "schema": {"errors"},
    "model": {"errors", "schema"},
    "metrics": {"errors", "schema"},
    "stats": {"errors", "schema", "model"},
    "analysis": {"errors", "progress", "memory", "schema", "metrics", "stats", "model"},
    "report": {"errors", "progress", "schema"},
    "io": {"errors", "progress", "schema", "metrics", "report"},
    "evaluate": {"errors", "progress", "schema", "io"},
    "train": {"errors", "progress", "schema", "io", "stats"},  # exception: the quick evaluation's sharpness summary
    "vision": {"errors", "progress", "schema", "io", "stats"},  # exception: the emergence table of the vision scores
    "synthetic": {"errors", "schema"},
    "api": {"errors", "schema", "analysis", "io"},
    "demo": {
        "errors",
        "progress",
        "memory",
        "schema",
        "metrics",
        "stats",
        "model",
        "analysis",
        "report",
        "io",
        "evaluate",
        "train",
        "api",
    },
    "mirage": {
        "errors",
        "progress",
        "memory",
        "schema",
        "metrics",
        "stats",
        "model",
        "analysis",
        "report",
        "io",
        "evaluate",
        "train",
        "vision",
        "synthetic",
        "api",
        "demo",
    },
    "cli": {"errors", "mirage"},
}
# what a function may import: optional extras too heavy to load with the package
OPTIONAL_HEAVY = {
    "torch",
    "transformers",
    "tokenizers",
    "safetensors",
    "huggingface_hub",
    "tqdm",
    "ray",
    "inspect_ai",
    "httpx",
    "llama_cpp",
    "sklearn",
    "PIL",
}


def module_name(path: Path) -> str:
    rel = path.relative_to(SRC.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def package_of(module: str) -> str:
    """``mirage.analysis.curves`` -> ``analysis``; ``mirage.cli`` -> ``cli``; ``mirage`` -> ``mirage``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "mirage"


def _resolve(module: str, is_package: bool, node: ast.ImportFrom) -> list[str]:
    """Absolute names a ``from ... import ...`` brings in (each imported name tried as a submodule)."""
    if node.level:
        base = module.split(".") if is_package else module.split(".")[:-1]
        base = base[: len(base) - (node.level - 1)]
        target = ".".join(base + ([node.module] if node.module else []))
    else:
        target = node.module or ""
    return [target] + [f"{target}.{alias.name}" for alias in node.names]


def imports_of(source: str, module: str, is_package: bool) -> list[tuple[int, str, bool, str]]:
    """(line, imported module, inside a function, the import's source line) of every import."""
    tree = ast.parse(source)
    lines = source.splitlines()
    out: list[tuple[int, str, bool, str]] = []

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            inner = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            if isinstance(child, ast.Import):
                for alias in child.names:
                    out.append((child.lineno, alias.name, in_function, lines[child.lineno - 1]))
            elif isinstance(child, ast.ImportFrom):
                for name in (
                    _resolve(module, is_package, child)[:1] if child.module else _resolve(module, is_package, child)[1:]
                ):
                    out.append((child.lineno, name, in_function, lines[child.lineno - 1]))
            visit(child, inner)

    visit(tree, False)
    return out


def violations(source: str, module: str, is_package: bool = False) -> list[str]:
    """Every import of ``source`` (the code of ``module``) that breaks the layering rules."""
    found = []
    pkg = package_of(module)
    allowed = ALLOWED[pkg] | {pkg}
    lines = source.splitlines()
    for lineno, name, in_function, _text in imports_of(source, module, is_package):
        top = name.split(".")[0]
        if in_function:
            block = lineno - 1  # a group of imports may share the comment of its first line
            while block > 0 and lines[block - 1].strip().startswith(("import ", "from ")):
                block -= 1
            commented = any("#" in lines[i] for i in range(block, lineno))
            if top not in OPTIONAL_HEAVY:
                found.append(f"{module}:{lineno}: import of {name} inside a function")
            elif not commented:
                found.append(f"{module}:{lineno}: optional import of {name} without a comment saying why")
        if top != "mirage":
            continue
        target = package_of(name)
        if target not in allowed and not (name == "mirage" and pkg == "cli"):
            found.append(f"{module}:{lineno}: {pkg} may not import {name} ({target}); allowed: {sorted(allowed)}")
    return found


def modules() -> list[Path]:
    return sorted(p for p in SRC.rglob("*.py"))


def test_every_package_is_known():
    packages = {package_of(module_name(p)) for p in modules()}
    assert packages <= set(ALLOWED), packages - set(ALLOWED)


@pytest.mark.parametrize("path", modules(), ids=lambda p: module_name(p))
def test_imports_point_one_way(path):
    problems = violations(path.read_text(encoding="utf-8"), module_name(path), path.name == "__init__.py")
    assert not problems, "\n".join(problems)


def test_the_check_fails_on_an_upward_import_and_a_hidden_local_import():
    """The rule is not vacuous: an upward import, an import to a sibling a package may not use, an
    uncommented optional import and a local import of mirage are all caught."""
    assert violations("from ..cli import app\n", "mirage.schema.tables")
    assert violations("from ..io.files import write_csv\n", "mirage.analysis.curves")
    assert violations("from ..analysis.curves import collect_curves\n", "mirage.report.analysis")
    assert violations("def f():\n    from ..stats import z_value\n", "mirage.metrics.registry")
    assert violations("def f():\n    import torch\n", "mirage.evaluate.run")
    assert not violations("def f():\n    import torch  # heavy: mirage[eval]\n", "mirage.evaluate.run")
    assert not violations("from ..schema.vocab import Verdict\n", "mirage.analysis.verdicts")
    assert violations("import mirage.analysis\n", "mirage.cli")
    assert not violations("import mirage\n", "mirage.cli")


def test_no_import_cycles_at_module_level():
    graph: dict[str, set[str]] = {}
    names = {module_name(p) for p in modules()}
    for path in modules():
        mod = module_name(path)
        deps = set()
        for _, name, in_function, text in imports_of(path.read_text(encoding="utf-8"), mod, path.name == "__init__.py"):
            if in_function or "TYPE_CHECKING" in text or not name.startswith("mirage"):
                continue
            while name not in names and "." in name:
                name = name.rsplit(".", 1)[0]
            if name in names and name != mod:
                deps.add(name)
        graph[mod] = deps
    # the package __init__ modules a submodule's import passes through are not edges of the data flow
    for mod in graph:
        graph[mod] = {d for d in graph[mod] if not mod.startswith(d + ".")}
    state: dict[str, int] = {}
    cycle: list[str] = []

    def dfs(node: str, stack: list[str]) -> bool:
        state[node] = 1
        for dep in sorted(graph.get(node, ())):
            if state.get(dep) == 1:
                cycle.extend(stack[stack.index(dep) :] + [node, dep] if dep in stack else [node, dep])
                return True
            if state.get(dep) is None and dfs(dep, stack + [node]):
                return True
        state[node] = 2
        return False

    sys.setrecursionlimit(10_000)
    for mod in sorted(graph):
        if state.get(mod) is None and dfs(mod, []):
            break
    assert not cycle, " -> ".join(cycle)


def test_the_public_api_is_lazy_and_complete():
    """``import mirage`` loads no pandas (``mirage --help`` stays fast), and every name in
    ``mirage.__all__`` resolves."""
    import subprocess

    code = (
        "import sys, mirage.cli; heavy = [m for m in ('pandas', 'numpy', 'torch', 'matplotlib', 'pyarrow') "
        "if m in sys.modules]; print(heavy)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONPATH": str(SRC.parent), "PATH": ""},
    ).stdout.strip()
    assert out == "[]"
    import mirage

    for name in mirage.__all__:
        assert getattr(mirage, name) is not None, name
