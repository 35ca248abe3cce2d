"""No import cycles inside the nerfseg package (issue 14: one way to do each thing, and no circles).

The graph is read from the source with ``ast`` (nothing is imported): every ``import`` and ``from ... import``
anywhere in a module counts, module level or inside a function (a lazy import hides a cycle, it does not
remove it), and imports under ``if TYPE_CHECKING:`` count too (a type-only cycle still means two modules
need each other's names). ``from pkg import name`` points at the submodule ``pkg.name`` when one exists,
else at ``pkg`` itself. A submodule importing its own parent package (which runs first anyway, and whose
``__init__`` re-exports it) is not counted as an edge.
"""

from __future__ import annotations

import ast
from pathlib import Path

import nerfseg

PACKAGE_ROOT = Path(nerfseg.__file__).resolve().parent


def module_names(package_dir: Path) -> dict[str, Path]:
    """Dotted module name -> file, for every .py file below ``package_dir`` (a package's name is its folder's)."""
    mods: dict[str, Path] = {}
    for path in sorted(package_dir.rglob("*.py")):
        parts = (package_dir.name, *path.relative_to(package_dir).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        mods[".".join(parts)] = path
    return mods


def _absolute(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    """The absolute module a ``from`` import names (relative imports resolved against ``module``)."""
    if not node.level:
        return node.module or ""
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def import_graph(package_dir: Path) -> dict[str, set[str]]:
    """Module -> the package's modules it imports (see the module docstring for what counts)."""
    mods = module_names(package_dir)
    graph: dict[str, set[str]] = {}
    for module, path in mods.items():
        deps: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
            if isinstance(node, ast.Import):
                deps.update(alias.name for alias in node.names if alias.name in mods)
            elif isinstance(node, ast.ImportFrom):
                target = _absolute(module, path.name == "__init__.py", node)
                if target not in mods:
                    continue
                subs = {f"{target}.{alias.name}" for alias in node.names if f"{target}.{alias.name}" in mods}
                deps |= subs
                if len(subs) < len(node.names):  # some names are attributes of the module itself
                    deps.add(target)
        graph[module] = {d for d in deps if d != module and not module.startswith(d + ".")}
    return graph


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), each sorted: every one is a cycle."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                cycles.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return cycles


def test_nerfseg_has_no_import_cycle() -> None:
    graph = import_graph(PACKAGE_ROOT)
    assert "nerfseg.dataset_tools.build" in graph  # the walk found the package's modules
    cycles = find_cycles(graph)
    detail = "\n".join(f"{c}: " + "; ".join(f"{m} -> {sorted(graph[m] & set(c))}" for m in c) for c in cycles)
    assert not cycles, f"import cycles in nerfseg:\n{detail}"


def test_checker_sees_lazy_type_checking_and_relative_imports(tmp_path: Path) -> None:
    """The checker itself: a cycle closed by a lazy, a TYPE_CHECKING-only or a relative import is found."""
    pkg = tmp_path / "toy"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("from toy.a import A\n")
    (pkg / "a.py").write_text("from toy import b\nA = 1\n")
    (pkg / "b.py").write_text("def f():\n    from .c import C\n    return C\n")
    (pkg / "c.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from toy.a import A\nC = 2\n")
    (pkg / "d.py").write_text("import toy\n")  # its own parent package: not an edge
    graph = import_graph(pkg)
    assert graph["toy.b"] == {"toy.c"} and graph["toy.d"] == set()
    assert find_cycles(graph) == [["toy.a", "toy.b", "toy.c"]]
    (pkg / "c.py").write_text("C = 2\n")
    assert find_cycles(import_graph(pkg)) == []
