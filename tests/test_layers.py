"""The import graph follows the layers of docs/architecture.md: a module imports only from its own layer or lower
ones (at module level and inside functions alike; imports for type checking only are exempt). A new upward import
fails here with the module, the line and the two layers."""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
#: lowest first; a module belongs to the first layer whose prefix matches its dotted name (package-relative). The
#: folders of alpose_bench/ are the layers, so a module's folder says what it may import.
LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("core", ("__init__", "core")),
    ("pose", ("pose",)),
    ("datasets", ("datasets",)),
    ("spec", ("spec",)),
    ("samplers", ("samplers",)),
    ("results", ("results",)),
    ("engine", ("engine",)),
    ("experiment", ("experiment",)),
    ("present", ("present",)),
    ("suggest", ("suggest",)),
    ("tools", ("tools", "testing")),
    ("command line", ("errors", "cli", "commands")),
)  # fmt: skip
PACKAGES = {"alpose_bench": REPO / "alpose_bench", "alpose_bench.samplers": REPO / "samplers",
            "alpose_bench.datasets": REPO / "datasets"}  # fmt: skip


#: the one upward import, and why: a composite name (SCORER+SELECTOR) is a class the registry builds on demand
ALLOWED = {("alpose_bench.spec.registry", "alpose_bench.samplers.diverse")}


def modules() -> dict[str, Path]:
    found = {}
    for package, folder in PACKAGES.items():
        for path in folder.rglob("*.py"):
            parts = [p for p in path.relative_to(folder).with_suffix("").parts if p != "__init__"]
            found[".".join([package, *parts])] = path
    return found


def layer_of(module: str) -> int:
    name = module.removeprefix("alpose_bench").lstrip(".") or "__init__"
    for index, (_, prefixes) in enumerate(LAYERS):
        if any(name == p or name.startswith(p + ".") for p in prefixes):
            return index
    raise AssertionError(f"module {module} is in no layer; add it to tests/test_layers.py LAYERS")


def imports(path: Path) -> list[tuple[int, str]]:
    """(line, module) of every alpose_bench import, skipping `if TYPE_CHECKING:` blocks."""
    tree = ast.parse(path.read_text())
    skipped = {
        id(n) for block in ast.walk(tree) if isinstance(block, ast.If) and "TYPE_CHECKING" in ast.unparse(block.test)
        for n in ast.walk(block)
    }  # fmt: skip
    found = []
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("alpose_bench"):
            found.extend(
                (node.lineno, f"{node.module}.{a.name}") for a in node.names
            )  # a module, or a name in one
        elif isinstance(node, ast.Import):
            found.extend((node.lineno, a.name) for a in node.names if a.name.startswith("alpose_bench"))
    return found


def test_no_module_imports_from_a_higher_layer() -> None:
    known = modules()
    upward = []
    for module, path in known.items():
        here = layer_of(module)
        for line, target in imports(path):
            while target not in known and "." in target:
                target = target.rsplit(".", 1)[0]
            there = layer_of(target)
            if there > here and (module, target) not in ALLOWED:
                upward.append(
                    f"{path.relative_to(REPO)}:{line} ({LAYERS[here][0]}) imports {target} ({LAYERS[there][0]})"
                )
    assert not upward, "upward imports:\n" + "\n".join(upward)


def test_every_module_has_a_layer() -> None:
    for module in modules():
        layer_of(module)
