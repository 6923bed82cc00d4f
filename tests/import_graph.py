"""petard's own import graph, read from the source with `ast`, and the circles in it.

Every import counts, wherever it stands: at the top, inside a function, or under
``if TYPE_CHECKING:`` (a circle that only type checkers see is still a circle for a reader).
``from package import name`` is an arrow to ``package.name`` when that is a module, else to
``package``. A circle is a strongly connected group of two or more modules, or a module
that imports itself.

    python tests/import_graph.py            # every circle in the package, or "no circles"
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PACKAGE = "petard"
# The repository's folders that install as subpackages (pyproject's package-dir maps "petard" to ".").
SOURCE_FOLDERS = ("core", "backends", "plugins", "api", "guest", "testing")


def package_modules(repo: Path = REPO) -> dict[str, Path]:
    """Module name -> file, for every module of the installed package."""
    modules = {PACKAGE: repo / "__init__.py"}
    for path in repo.glob("*.py"):
        if path.name != "__init__.py":
            modules[f"{PACKAGE}.{path.stem}"] = path
    for folder in SOURCE_FOLDERS:
        for path in sorted((repo / folder).rglob("*.py")):
            parts = path.relative_to(repo).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            modules[".".join((PACKAGE, *parts))] = path
    return modules


def imported_names(tree: ast.AST, module: str, is_package: bool) -> Iterator[tuple[str, str | None]]:
    """(module, name or None) for every import statement in the tree."""
    package = module if is_package else module.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, None
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                target = f"{base}.{node.module}" if node.module else base
            else:
                target = node.module or ""
            for alias in node.names:
                yield target, alias.name


def import_graph(repo: Path = REPO) -> dict[str, set[str]]:
    """Module -> the package's modules it imports."""
    modules = package_modules(repo)
    graph: dict[str, set[str]] = {}
    for module, path in modules.items():
        tree = ast.parse(path.read_text(), filename=str(path))
        arrows = set()
        for target, name in imported_names(tree, module, path.name == "__init__.py"):
            if name is not None and f"{target}.{name}" in modules:
                arrows.add(f"{target}.{name}")
            elif target in modules:
                arrows.add(target)
        graph[module] = arrows
    return graph


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected groups of two or more modules (and self-imports), sorted."""
    index: dict[str, int] = {}
    lowlink: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(start: str) -> None:        # Tarjan's algorithm, iteratively
        work = [(start, iter(sorted(graph[start])))]
        index[start] = lowlink[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, arrows = work[-1]
            for target in arrows:
                if target not in index:
                    index[target] = lowlink[target] = len(index)
                    stack.append(target)
                    on_stack.add(target)
                    work.append((target, iter(sorted(graph[target]))))
                    break
                if target in on_stack:
                    lowlink[node] = min(lowlink[node], index[target])
            else:
                work.pop()
                if work:
                    lowlink[work[-1][0]] = min(lowlink[work[-1][0]], lowlink[node])
                if lowlink[node] == index[node]:
                    group = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        group.append(member)
                        if member == node:
                            break
                    if len(group) > 1 or node in graph[node]:
                        found.append(sorted(group))

    for module in sorted(graph):
        if module not in index:
            visit(module)
    return sorted(found)


def main() -> int:
    found = circles(import_graph())
    for group in found:
        print(f"circle of {len(group)}: {', '.join(group)}")
    if not found:
        print("no circles")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
