"""No import circles anywhere in petard (tests/import_graph.py reads the graph from the
source with `ast`, counting imports under TYPE_CHECKING and inside functions too), and the
layers keep their direction: core imports no backend, api, plugin or web framework."""

from __future__ import annotations

import import_graph


def test_the_package_has_no_import_circle():
    circles = import_graph.circles(import_graph.import_graph())
    assert circles == [], "\n".join(f"circle of {len(group)}: {', '.join(group)}" for group in circles)


def test_core_imports_no_backend_api_or_plugin():
    graph = import_graph.import_graph()
    upward = sorted((module, target) for module, targets in graph.items() if module.startswith("petard.core")
                    for target in targets
                    if target.startswith(("petard.backends", "petard.api", "petard.plugins", "petard.testing")))
    assert upward == []


def test_the_reader_finds_a_circle_and_every_kind_of_import(tmp_path):
    for folder in import_graph.SOURCE_FOLDERS:
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "__init__.py").write_text("")
    (tmp_path / "__init__.py").write_text("")
    (tmp_path / "core" / "a.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .b import B\n")
    (tmp_path / "core" / "b.py").write_text("def late():\n    from petard.core import c\n")
    (tmp_path / "core" / "c.py").write_text("import petard.core.a\n")
    (tmp_path / "core" / "d.py").write_text("from . import a\n")
    graph = import_graph.import_graph(tmp_path)
    assert graph["petard.core.a"] == {"petard.core.b"}
    assert graph["petard.core.b"] == {"petard.core.c"}
    assert graph["petard.core.d"] == {"petard.core.a"}
    assert import_graph.circles(graph) == [["petard.core.a", "petard.core.b", "petard.core.c"]]


def test_device_plugins_use_only_the_public_device_api():
    """The built-in devices and the worked example import petard.devices, nothing of petard.core."""
    graph = import_graph.import_graph()
    outside = sorted((module, target) for module, targets in graph.items() if module.startswith("petard.plugins")
                     for target in targets
                     if target.startswith("petard.") and not target.startswith(("petard.devices", "petard.plugins")))
    example = import_graph.REPO / "examples" / "pl061" / "src"
    for path in sorted(example.rglob("*.py")):
        tree = import_graph.ast.parse(path.read_text())
        for target, _name in import_graph.imported_names(tree, "petard_pl061.x", False):
            if target.startswith("petard.") and target != "petard.devices":
                outside.append((str(path.relative_to(import_graph.REPO)), target))
    assert outside == []


def test_the_public_device_api_names_what_it_exports():
    import petard.devices

    assert sorted(petard.devices.__all__) == sorted(set(petard.devices.__all__))
    for name in petard.devices.__all__:
        assert getattr(petard.devices, name) is not None, name
