"""The shape of the house (docs/DESIGN.md): small modules, and imports that flow one way."""

from __future__ import annotations

import ast
from pathlib import Path

import selfcond

ROOT = Path(selfcond.__file__).parent
MAX_LINES = 400


def modules() -> dict[str, Path]:
    out = {}
    for path in ROOT.rglob("*.py"):
        parts = path.relative_to(ROOT.parent).with_suffix("").parts
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


def top_level_imports(path: Path, known: set[str]) -> set[str]:
    """selfcond modules a module imports when it is imported (imports inside functions are left
    out: they run later, when everything is loaded)."""
    out = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name in known}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("selfcond"):
            subs = {f"{node.module}.{a.name}" for a in node.names} & known
            out |= subs  # `from pkg import submodule` needs the submodule, not pkg's own names
            if len(subs) < len(node.names):
                out.add(node.module)
    return out & known


def test_no_module_is_over_400_lines():
    long = {name: n for name, p in modules().items() if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert not long, long


def test_no_import_cycles():
    mods = modules()
    graph = {m: top_level_imports(p, set(mods)) - {m} for m, p in mods.items()}
    done, stack = set(), []

    def visit(m):
        if m in stack:
            raise AssertionError("import cycle: " + " -> ".join(stack[stack.index(m):] + [m]))
        if m in done:
            return
        stack.append(m)
        for dep in sorted(graph[m]):
            visit(dep)
        stack.pop()
        done.add(m)

    for m in sorted(graph):
        visit(m)


def test_partitions_and_metrics_never_see_the_trainer():
    """They receive a PartitionContext / EvalContext (DESIGN.md): nothing in them names the Trainer."""
    for sub in ("partition", "metrics", "cluster", "nets", "data"):
        for path in (ROOT / sub).glob("*.py"):
            tree = ast.parse(path.read_text())
            names = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
            names |= {n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute)}
            imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
            imported |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
            assert "Trainer" not in names and "trainer" not in names, path
            assert not any(m and m.startswith("selfcond.train") for m in imported), path
