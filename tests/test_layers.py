"""The layers of docs/architecture.md, as an import contract.

The table under "The modules" lists the layers from the top down (edges, copies, checks,
migrations, where, small) and places every module of the package in one of them. A module
imports only from its own layer and the layers below it; every `from . import …`,
`from .x import …` and `import sessionorm.x` counts, inside functions too.
"""
from __future__ import annotations

import ast
import re
from pathlib import Path

import sessionorm

PACKAGE = Path(sessionorm.__file__).parent
ARCHITECTURE = Path(__file__).resolve().parent.parent / "docs" / "architecture.md"
LAYERS = ["edges", "copies", "checks", "migrations", "where", "small"]  # the top first

# Imports against the layers that are known and have a plan: (importer, imported) -> why.
KNOWN: dict[tuple[str, str], str] = {}


def documented_layers() -> dict[str, str]:
    """module -> layer, from the table in docs/architecture.md (a blank layer cell: the row above's)."""
    text = ARCHITECTURE.read_text()
    table = text[text.index("## The modules"):text.index("## A migration, step by step")]
    placed: dict[str, str] = {}
    layer = ""
    for row in table.splitlines():
        cells = [c.strip() for c in row.strip().strip("|").split("|")]
        if len(cells) < 3 or cells[0] in ("layer", "---"):
            continue
        layer = cells[0] or layer
        for module in re.findall(r"`([a-z_]+)\.py`", cells[1]):
            assert module not in placed, f"{module}.py is in two rows of the table"
            placed[module] = layer
    return placed


def imports(path: Path) -> set[str]:
    """The package's modules that `path` imports."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level == 1 and node.module:
                found.add(node.module.split(".")[0])
            elif node.level == 1:  # from . import commands
                found |= {alias.name for alias in node.names}
            elif node.module and node.module.split(".")[0] == "sessionorm":
                parts = node.module.split(".")
                found |= {parts[1]} if len(parts) > 1 else {a.name for a in node.names}
        elif isinstance(node, ast.Import):
            found |= {a.name.split(".")[1] for a in node.names
                      if a.name.startswith("sessionorm.")}
    return found - {"migrations"}  # the shipped scripts' folder, loaded by path, not imported


def modules() -> list[str]:
    return sorted(p.stem for p in PACKAGE.glob("*.py"))


def test_every_module_is_in_one_documented_layer():
    placed = documented_layers()
    assert set(placed.values()) == set(LAYERS), sorted(set(placed.values()))
    assert sorted(set(modules()) - set(placed)) == [], "modules the table does not place"
    assert sorted(set(placed) - set(modules())) == [], "modules in the table that do not exist"


def violations() -> dict[tuple[str, str], str]:
    placed = documented_layers()
    rank = {layer: n for n, layer in enumerate(reversed(LAYERS))}  # small 0 … edges 5
    found = {}
    for module in modules():
        for imported in imports(PACKAGE / f"{module}.py"):
            if rank[placed[imported]] > rank[placed[module]]:
                found[(module, imported)] = f"{module} ({placed[module]}) imports " \
                                            f"{imported} ({placed[imported]})"
    return found


def test_modules_import_only_their_own_layer_and_those_below():
    found = violations()
    assert sorted(set(found) - set(KNOWN)) == [], [found[k] for k in sorted(set(found) - set(KNOWN))]


def test_the_known_exceptions_still_exist():
    """An exception that was fixed leaves the list, so that it cannot come back unnoticed."""
    assert sorted(set(KNOWN) - set(violations())) == []


def test_the_imports_are_read():
    """The reader finds relative, `from . import` and lazy imports."""
    assert {"commands", "errors", "store"} <= imports(PACKAGE / "__init__.py")
    assert "commands" in imports(PACKAGE / "cli.py")
    assert "runner" in imports(PACKAGE / "exercise.py")
