"""The layering of ARCHITECTURE.md: imports run one way between the kit's packages, and no module
imports itself back through others (read from the source with ``ast``, nothing is imported)."""
import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "cc2dkit"

# Lowest first. A module may import from its own layer and the layers below, never above.
LAYERS = [
    {"__init__", "config", "paths"},
    {"runtime", "distributed", "metrics"},
    {"data"},
    {"backbone"},
    {"network"},
    {"inference"},
    {"training"},
    {"methods"},
    {"analysis"},
    {"viz"},
    {"widgets"},
    {"notebook", "cli", "__main__"},
]


def _unit(module: str) -> str:
    """``cc2dkit.data.grid`` -> ``data``; ``cc2dkit`` -> ``__init__``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _layer(unit: str) -> int:
    for i, layer in enumerate(LAYERS):
        if unit in layer:
            return i
    raise AssertionError(f"cc2dkit.{unit} is in no layer of ARCHITECTURE.md (tests/test_architecture.py:LAYERS)")


def _module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path, name: str | None = None) -> set[str]:
    """cc2dkit modules imported by a file (absolute names), at any depth of the file; ``name``: the
    file's module name (default: from its place in the package)."""
    name = name or _module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == "cc2dkit"}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] != "cc2dkit":
                continue
            found.add(target)
            for alias in node.names:  # "from . import x" may import a submodule x
                candidate = f"{target}.{alias.name}"
                if (PACKAGE.parent / Path(*candidate.split("."))).with_suffix(".py").exists() or \
                        (PACKAGE.parent / Path(*candidate.split(".")) / "__init__.py").exists():
                    found.add(candidate)
    return found


GRAPH = {_module_name(p): _imports(p) for p in sorted(PACKAGE.rglob("*.py"))}


def test_every_package_has_a_layer():
    for module in GRAPH:
        _layer(_unit(module))


def test_imports_run_one_way():
    upward = []
    for module, targets in GRAPH.items():
        for t in targets:
            if _layer(_unit(t)) > _layer(_unit(module)):
                upward.append(f"{module} imports {t}")
    assert not upward, "imports against the layering of ARCHITECTURE.md:\n" + "\n".join(sorted(upward))


def find_cycles(graph: dict[str, set[str]], packages: set[str]) -> list[str]:
    """Cycles of a module graph; a package importing its own submodules is its definition, not a cycle."""
    state, cycles = {}, []

    def visit(node, path):
        state[node] = "open"
        for nxt in sorted(graph.get(node, ())):
            if node in packages and nxt.startswith(node + "."):
                continue
            if state.get(nxt) == "open":
                cycles.append(" -> ".join(path[path.index(nxt):] + [nxt]))
            elif nxt not in state:
                visit(nxt, path + [nxt])
        state[node] = "done"

    for m in sorted(graph):
        if m not in state:
            visit(m, [m])
    return cycles


def test_no_import_cycles():
    packages = {_module_name(p) for p in PACKAGE.rglob("__init__.py")}
    cycles = find_cycles({m: {t for t in ts if t in GRAPH} for m, ts in GRAPH.items()}, packages)
    assert not cycles, "import cycles:\n" + "\n".join(cycles)


def test_the_checks_have_teeth(tmp_path):
    """An upward import is seen in a file's source, and a two-module cycle is found."""
    probe = tmp_path / "probe.py"
    probe.write_text("from ..methods import run_method\nimport cc2dkit.widgets\n")
    imports = _imports(probe, "cc2dkit.data.probe")
    assert imports == {"cc2dkit.methods", "cc2dkit.widgets"}
    assert all(_layer(_unit(t)) > _layer("data") for t in imports)
    graph = {"cc2dkit.a.x": {"cc2dkit.a.y"}, "cc2dkit.a.y": {"cc2dkit.a.x"}, "cc2dkit.a": {"cc2dkit.a.x"}}
    assert find_cycles(graph, {"cc2dkit.a"}) == ["cc2dkit.a.x -> cc2dkit.a.y -> cc2dkit.a.x"]
