"""The package's shape: imports point down only, and the package root stays small.

The import graph is read from the source with ``ast`` (module-level and function-level imports
alike, ``TYPE_CHECKING`` blocks included), so a cycle hidden inside a function still fails here.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "squall"


def module_name(path: Path, root: Path) -> str:
    parts = path.relative_to(root.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def squall_modules(root: Path = PACKAGE) -> dict[str, Path]:
    return {module_name(path, root): path for path in sorted(root.rglob("*.py"))}


def imported(tree: ast.AST, name: str, is_package: bool, known: set[str]) -> set[str]:
    """The squall modules that the module ``name`` imports anywhere in its source."""
    found: set[str] = set()
    package = name if is_package else name.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            targets = [f"{base}.{alias.name}" for alias in node.names] + [base]
        else:
            continue
        for dotted in targets:
            target = dotted
            while target and target not in known:  # `from squall.x import attr` -> squall.x
                target = target.rpartition(".")[0]
            if target and target not in (name, "squall"):
                found.add(target)
    return found


def import_graph(root: Path = PACKAGE) -> dict[str, set[str]]:
    modules = squall_modules(root)
    known = set(modules)
    graph = {}
    for name, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        graph[name] = imported(tree, name, path.name == "__init__.py", known)
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as a list of modules (first == last), or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_squall_has_no_import_cycle() -> None:
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_an_added_upward_import_is_caught(tmp_path: Path) -> None:
    """The check itself: HTTP/1.1 importing the HTTP/2 connection closes a cycle and is named."""
    copy = tmp_path / "squall"
    for name, path in squall_modules().items():
        target = copy / path.relative_to(PACKAGE)
        target.parent.mkdir(parents=True, exist_ok=True)
        text = path.read_text(encoding="utf-8")
        if name == "squall.server.http1":
            text = "import squall.server.http2\n" + text
        target.write_text(text, encoding="utf-8")
    cycle = find_cycle(import_graph(copy))
    assert cycle is not None and "squall.server.http1" in cycle and "squall.server.http2" in cycle


# Layers, top to bottom: a module may import its own layer's modules (if that makes no cycle)
# and any layer below, never one above.
LAYERS = [
    ("squall.cli", "squall.__main__", "squall.workers"),
    ("squall.process",),
    ("squall.server",),
    ("squall.asgi", "squall.observe", "squall.protocol", "squall.loader", "squall.demo", "squall.logs"),
    ("squall.events", "squall.config", "squall.grammar", "squall"),
]


def layer_of(module: str) -> int:
    best = (-1, len(LAYERS))
    for index, prefixes in enumerate(LAYERS):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > best[0]:
                best = (len(prefix), index)
    return best[1]


# The one exception: the package itself is the facade of the Python API. ``squall.run``,
# ``squall.Config`` and ``squall.Server`` live in squall.process.embed and are imported on first
# use by the module ``__getattr__`` of squall/__init__.py (so ``import squall`` stays free of
# asyncio); nothing below imports the facade back, so no cycle comes of it.
ALLOWED_UPWARD = {("squall", "squall.process"), ("squall", "squall.process.embed")}


def test_imports_point_down_only() -> None:
    upward = [
        f"{module} -> {target}"
        for module, targets in import_graph().items()
        for target in sorted(targets)
        if layer_of(target) < layer_of(module) and (module, target) not in ALLOWED_UPWARD
    ]
    assert not upward, "imports pointing up a layer: " + ", ".join(upward)


@pytest.mark.parametrize("room", ["protocol", "asgi"])
def test_protocol_and_asgi_know_no_event_loop_glue(room: str) -> None:
    """protocol/ is sans-I/O (no asyncio, no asgi/); asgi/ knows no wire format (no protocol/)."""
    forbidden = {"protocol": ("squall.asgi", "squall.server"), "asgi": ("squall.protocol", "squall.server")}
    for name, path in squall_modules().items():
        if not name.startswith(f"squall.{room}"):
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        targets = imported(tree, name, path.name == "__init__.py", set(squall_modules()))
        bad = [t for t in targets if t.startswith(forbidden[room])]
        assert not bad, f"{name} imports {bad}"
        if room == "protocol":
            assert "asyncio" not in {
                a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names
            }


def test_package_root_holds_at_most_ten_modules() -> None:
    root = sorted(p.name for p in PACKAGE.glob("*.py"))
    assert len(root) <= 10, root


def _constant_names(target: ast.expr) -> list[str]:
    names = target.elts if isinstance(target, ast.Tuple) else [target]
    return [n.id for n in names if isinstance(n, ast.Name) and n.id.lstrip("_").isupper()]


@pytest.mark.parametrize("module", __import__("squall").COMPILED_MODULES)
def test_compiled_modules_declare_their_constants_final(module: str) -> None:
    # Compiled by mypyc, a plain module global is read from the module's dict at every use; a
    # Final one is a C static or an inlined literal (9% of a hello request's instructions).
    path = PACKAGE.parent / (module.replace(".", "/") + ".py")
    plain = []
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Assign):
            if isinstance(node.value, ast.Call) and ast.unparse(node.value.func) == "TypeVar":
                continue  # a type variable, not a value
            plain += [name for target in node.targets for name in _constant_names(target)]
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            annotation = ast.unparse(node.annotation)
            if node.target.id.lstrip("_").isupper() and not annotation.startswith("Final"):
                plain.append(node.target.id)
    assert plain == [], f"{module}: declare these Final (typing.Final)"
