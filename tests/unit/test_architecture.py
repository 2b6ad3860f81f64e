"""The code's shape, enforced: layers only point down, the library never prints, rooms stay small.

Read from the source with ``ast`` (nothing is imported or run), so a failure names the file and line.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from hostprep import strategies

PACKAGE = Path(__file__).resolve().parents[2] / "hostprep"
EDGE = {"hostprep.cli.program", "hostprep.cli.app", "hostprep.cli.tasks"}   # the command line: the one place that prints
# The package's folders, bottom to top, in the order a run uses them: a folder imports only folders below it.
FOLDERS = ("inventory", "ssh", "host", "strategies", "change", "audit", "fleet", "cli")
ENTRY = {"hostprep.__main__"}           # `python -m hostprep`: the one top-level module that may import the edge
# The one import by name: the CLI's task bodies import the library when a task runs, so that --version and
# --help start without paramiko, Fabric or YAML (a task's module named under TYPE_CHECKING, still layered here).
DEFERRED = {"hostprep.cli.deferred"}
LONGEST_MODULE = 400                    # lines
# Longer by design, each with why: the guard's policy is one self-contained stdlib file (issue 25) that is
# shipped whole into the guard's container and imported there by its server; it is split only with them.
LONG_BY_DESIGN = {"hostprep.strategies.proxy_policy": 520}
LONGEST_FUNCTION = 50                   # lines, docstring included ("functions under ~50 lines")


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}
TREES = {name: ast.parse(path.read_text(), str(path)) for name, path in MODULES.items()}


def imported(node: ast.Import | ast.ImportFrom) -> list[str]:
    """The hostprep modules an import statement loads (``from hostprep import x`` names module x if it is one)."""
    if isinstance(node, ast.Import):
        return [a.name for a in node.names if a.name.split(".")[0] == "hostprep"]
    if node.level or not node.module or node.module.split(".")[0] != "hostprep":
        return []
    subs = [f"{node.module}.{a.name}" for a in node.names if f"{node.module}.{a.name}" in MODULES]
    return subs if len(subs) == len(node.names) else [node.module, *subs]


def imports_of(name: str) -> set[str]:
    return {m for node in ast.walk(TREES[name]) if isinstance(node, (ast.Import, ast.ImportFrom))
            for m in imported(node) if m != name and m in MODULES}


def cycles() -> list[list[str]]:
    """Every strongly connected group of more than one module (Tarjan), each as a sorted list."""
    graph = {name: imports_of(name) for name in MODULES}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for name in sorted(graph):
        if name not in index:
            visit(name)
    return found


def where(name: str, node: ast.AST) -> str:
    return f"{MODULES[name].relative_to(PACKAGE.parent)}:{getattr(node, 'lineno', '?')}"


def function_level_imports(name: str) -> list[str]:
    out = []
    for fn in ast.walk(TREES[name]):
        if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            out += [where(name, n) for n in ast.walk(fn)
                    if isinstance(n, (ast.Import, ast.ImportFrom)) and imported(n)]
            out += [where(name, n) for n in ast.walk(fn) if isinstance(n, ast.Call)
                    and getattr(n.func, "attr", getattr(n.func, "id", "")) in ("import_module", "__import__")]
    return out


def prints(name: str) -> list[str]:
    """Calls of print(), and writes to sys.stdout / sys.stderr."""
    out = []
    for n in ast.walk(TREES[name]):
        if not isinstance(n, ast.Call):
            continue
        f = n.func
        if isinstance(f, ast.Name) and f.id == "print":
            out.append(where(name, n))
        elif (isinstance(f, ast.Attribute) and f.attr == "write" and isinstance(f.value, ast.Attribute)
              and f.value.attr in ("stdout", "stderr")):
            out.append(where(name, n))
    return out


def strategy_tests(name: str) -> list[str]:
    """Comparisons with a registered strategy's name (``strategy == "chmod"``, ``in ("group-add", ...)``)."""
    names = set(strategies.NAMES)

    def named(node: ast.AST) -> bool:
        if isinstance(node, ast.Constant):
            return node.value in names
        return isinstance(node, (ast.Tuple, ast.List, ast.Set)) and any(named(e) for e in node.elts)

    return [where(name, n) for n in ast.walk(TREES[name])
            if isinstance(n, ast.Compare) and any(named(x) for x in (n.left, *n.comparators))]


def test_there_are_no_import_circles_among_hostprep_modules() -> None:
    assert cycles() == []


def test_no_hostprep_module_is_imported_inside_a_function() -> None:
    assert [hit for name in MODULES if name not in DEFERRED for hit in function_level_imports(name)] == []


def test_only_the_cli_imports_a_module_by_name_and_only_through_deferred() -> None:
    assert [name for name in DEFERRED if function_level_imports(name)] == list(DEFERRED)
    users = {name for name in MODULES if "Deferred(" in MODULES[name].read_text()} - DEFERRED
    assert users and {folder_of(name) for name in users} == {"cli"}


def test_the_library_never_prints_only_the_edge_does() -> None:
    assert [hit for name in MODULES if name not in EDGE for hit in prints(name)] == []


def test_only_a_strategy_tests_for_a_strategy_by_name() -> None:
    assert [hit for name in MODULES if not name.startswith("hostprep.strategies")
            for hit in strategy_tests(name)] == []


def folder_of(name: str) -> str | None:
    """The package folder a module lives in; None for the shared modules at the package's top."""
    parts = MODULES[name].relative_to(PACKAGE).parts
    return parts[0] if len(parts) > 1 else None


def test_the_package_is_the_eight_folders_and_a_shared_bottom() -> None:
    assert sorted(p.name for p in PACKAGE.iterdir() if p.is_dir() and p.name != "__pycache__") == sorted(FOLDERS)


def test_a_folder_imports_only_folders_below_it() -> None:
    rank = {f: i for i, f in enumerate(FOLDERS)}
    upward = [f"{MODULES[name].relative_to(PACKAGE.parent)} imports {m}" for name in MODULES for m in imports_of(name)
              if folder_of(name) is not None and folder_of(m) is not None
              and rank[folder_of(m)] > rank[folder_of(name)]]   # type: ignore[index]
    assert upward == []


def test_the_shared_bottom_imports_no_folder() -> None:
    assert [f"{name} imports {m}" for name in MODULES if folder_of(name) is None and name not in ENTRY
            for m in imports_of(name) if folder_of(m) is not None] == []


def test_no_module_is_over_400_lines() -> None:
    assert [f"{MODULES[n].relative_to(PACKAGE.parent)}: {len(MODULES[n].read_text().splitlines())} lines"
            for n in MODULES if len(MODULES[n].read_text().splitlines()) > LONG_BY_DESIGN.get(n, LONGEST_MODULE)] == []


def test_host_scripts_live_in_a_folder_beside_the_python_that_sends_them() -> None:
    scripts = sorted(PACKAGE.rglob("*.sh"))
    assert scripts and all(s.parent != PACKAGE for s in scripts)
    for s in scripts:
        senders = [p for p in s.parent.glob("*.py") if f'"{s.name}"' in p.read_text()]
        assert senders, f"{s.relative_to(PACKAGE.parent)} is sent by no module beside it"


def test_unit_tests_mirror_the_package_folders() -> None:
    unit = Path(__file__).resolve().parent
    assert {p.name for p in unit.iterdir() if p.is_dir() and p.name != "__pycache__"} <= {*FOLDERS, "fixtures", "benchmarks"}


def test_functions_stay_short() -> None:
    long = [f"{where(name, fn)} {fn.name}: {fn.end_lineno - fn.lineno + 1} lines"   # type: ignore[operator]
            for name in MODULES for fn in ast.walk(TREES[name])
            if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef))
            and fn.end_lineno - fn.lineno + 1 > LONGEST_FUNCTION]   # type: ignore[operator]
    assert long == []


def test_the_checks_see_what_they_look_for() -> None:
    """The checker itself: a circle, a function-level import, a print and a strategy test are caught."""
    tree = ast.parse("def f():\n    from hostprep import audit\n    print(1)\n    return s == 'chmod'\n")
    TREES["hostprep._probe_"], MODULES["hostprep._probe_"] = tree, PACKAGE / "_probe_.py"
    try:
        assert function_level_imports("hostprep._probe_") and prints("hostprep._probe_")
        assert strategy_tests("hostprep._probe_")
        assert imports_of("hostprep._probe_") == {"hostprep.audit"}
        assert folder_of("hostprep._probe_") is None and folder_of("hostprep.change.plan") == "change"
    finally:
        del TREES["hostprep._probe_"], MODULES["hostprep._probe_"]
