"""The layers of docs/architecture.md, as an import contract.

The table under "The modules" lists the layers from the top down (edges, copies, checks,
migrations, where, small) and places every module of the package (those of `backends/` and
`copy/` too) in one of them. A module imports only from its own layer and the layers below
it; every `from . import …`, `from .x import …`, `from ..x import …` and `import sessionorm.x`
counts, inside functions too.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import sessionorm

PACKAGE = Path(sessionorm.__file__).parent
ARCHITECTURE = Path(__file__).resolve().parent.parent / "docs" / "architecture.md"
LAYERS = ["edges", "copies", "checks", "migrations", "where", "small"]  # the top first

# Imports against the layers that are known, each with its reason: (importer, imported) -> why.
KNOWN: dict[tuple[str, str], str] = {
    (
        "backends.sqlite",
        "backends.sqlite_copy",
    ): "a backend hands `copy` to its own bulk loader, which stands on the copy's modules; "
    "imported when a copy runs",
    ("backends.postgresql", "backends.pg_copy"): "the same, for PostgreSQL",
}


def module_name(path: str) -> str:
    """`backends/sqlite` -> `backends.sqlite`; `backends/__init__` -> `backends`."""
    parts = path.split("/")
    if parts[-1] == "__init__" and len(parts) > 1:
        parts = parts[:-1]
    return ".".join(parts)


def documented_layers() -> dict[str, str]:
    """module -> layer, from the table in docs/architecture.md (a blank layer cell: the row above's)."""
    text = ARCHITECTURE.read_text()
    table = text[text.index("## The modules") : text.index("## A migration, step by step")]
    placed: dict[str, str] = {}
    layer = ""
    for row in table.splitlines():
        cells = [c.strip() for c in row.strip().strip("|").split("|")]
        if len(cells) < 3 or cells[0] in ("layer", "---"):
            continue
        layer = cells[0] or layer
        for path in re.findall(r"`([a-z_]+(?:/[a-z_]+)*)\.py`", cells[1]):
            module = module_name(path)
            assert module not in placed, f"{path}.py is in two rows of the table"
            placed[module] = layer
    return placed


def modules() -> list[str]:
    return sorted(module_name(str(p.relative_to(PACKAGE).with_suffix(""))) for p in PACKAGE.rglob("*.py"))


def path_of(module: str) -> Path:
    as_package = PACKAGE / module.replace(".", "/") / "__init__.py"
    return as_package if as_package.exists() else PACKAGE / (module.replace(".", "/") + ".py")


def resolve(name: str) -> str:
    """The package's module that `name` (dotted, from the package) is, or is in ("": none)."""
    known = set(modules())
    while name and name not in known:
        name = name.rpartition(".")[0]
    return name


def imports(module: str) -> set[str]:
    """The package's modules that `module` imports."""
    path = path_of(module)
    package = module if path.name == "__init__.py" and module != "__init__" else module.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".") if package else []
                base = base[: len(base) - (node.level - 1)]
                start = ".".join([*base, *(node.module.split(".") if node.module else [])])
            elif node.module and node.module.split(".")[0] == "sessionorm":
                start = ".".join(node.module.split(".")[1:])
            else:
                continue
            for alias in node.names:  # `from . import commands`, `from .backends import opened`
                candidate = f"{start}.{alias.name}" if start else alias.name
                found.add(resolve(candidate) or resolve(start))
        elif isinstance(node, ast.Import):
            found |= {
                resolve(a.name.split(".", 1)[1]) for a in node.names if a.name.startswith("sessionorm.")
            }
    return found - {"migrations", "", module}  # the shipped scripts' folder, loaded by path


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
        for imported in imports(module):
            if rank[placed[imported]] > rank[placed[module]]:
                found[(module, imported)] = (
                    f"{module} ({placed[module]}) imports {imported} ({placed[imported]})"
                )
    return found


def test_modules_import_only_their_own_layer_and_those_below():
    found = violations()
    assert sorted(set(found) - set(KNOWN)) == [], [found[k] for k in sorted(set(found) - set(KNOWN))]


def test_the_known_exceptions_still_exist():
    """An exception that was fixed leaves the list, so that it cannot come back unnoticed."""
    assert sorted(set(KNOWN) - set(violations())) == []


def test_the_imports_are_read():
    """The reader finds relative (one or two dots), `from . import` and lazy imports."""
    assert {"commands", "errors", "store"} <= imports("__init__")
    assert "commands" in imports("cli")
    assert "runner" in imports("exercise")
    assert {"database", "backends.base", "backends.sqlite_files"} <= imports("backends.sqlite")
    assert "backends.sqlite_copy" in imports("backends.sqlite")  # inside a method
    assert {"backends", "copy.tables", "runner"} <= imports("copy.transfer")
    assert {"backends.base", "backends.choice", "backends.opening"} <= imports("backends")
