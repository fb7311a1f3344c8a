"""The map holds the code: every module sits on a written layer, and no private name crosses a module.

import-linter (run by `./dev test`, contracts in pyproject.toml) checks that imports point down the layers;
these tests check what it does not: that no module is left off the map, that private helpers stay private,
and that no import hides inside a function to dodge a cycle.
"""

from __future__ import annotations

import ast
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("portal", "releases", "strategies")
# Modules that are on no layer on purpose: the packages themselves, and the app label whose only content is
# the migration history of its old models (strategies/apps.py).
OFF_THE_MAP = {"portal", "releases", "strategies", "strategies.apps"}
# Imports inside functions that are there for a reason other than a cycle, each with it.
LATE_IMPORTS = {
    # Django's convention: an app's ready() runs once models are loaded.
    ("portal/apps.py", "ready"),
    ("releases/webhooks/apps.py", "ready"),
    ("strategies/flags/apps.py", "ready"),
    ("strategies/operations/apps.py", "ready"),
    # The logging configuration imports portal.observability before the apps are ready.
    ("portal/observability.py", "_operations"),
    # The Azure SDKs take over a second to import; a simulator-only process never needs them.
    ("releases/catalog/providers/registry.py", "provider_for"),
}


def project_modules() -> dict[str, Path]:
    modules = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            relative = path.relative_to(ROOT)
            if "migrations" in relative.parts:
                continue
            parts = list(relative.with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            modules[".".join(parts)] = relative
    return modules


def layer_modules() -> list[str]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    layers = next(c for c in config["contracts"] if c["id"] == "layers")["layers"]
    return [name.strip() for layer in layers for name in layer.replace("|", ":").split(":")]


def test_every_module_sits_on_a_written_layer() -> None:
    layers = layer_modules()
    off = sorted(
        name
        for name in project_modules()
        if name not in OFF_THE_MAP and not any(name == layer or name.startswith(layer + ".") for layer in layers)
    )
    assert off == [], f"add these modules to a layer in pyproject.toml (docs/architecture.md, Layers): {off}"


def test_every_layer_names_a_module_that_exists() -> None:
    modules = project_modules()
    assert [layer for layer in layer_modules() if layer not in modules] == []


def _imported_modules(tree: ast.Module) -> dict[str, str]:
    """Local name → project module, for `import a.b as c` and `from a import b` (b a module)."""
    modules = project_modules()
    names = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            for alias in node.names:
                if f"{node.module}.{alias.name}" in modules:
                    names[alias.asname or alias.name] = f"{node.module}.{alias.name}"
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name in modules and alias.asname:
                    names[alias.asname] = alias.name
    return names


def test_no_private_name_is_used_outside_its_module() -> None:
    crossings = []
    for path in project_modules().values():
        tree = ast.parse((ROOT / path).read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] in PACKAGES:
                crossings += [f"{path}: from {node.module} import {a.name}" for a in node.names if a.name[:1] == "_"]
        aliases = _imported_modules(tree)
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and node.value.id in aliases
                and node.attr.startswith("_")
                and not node.attr.startswith("__")
            ):
                crossings.append(f"{path}:{node.lineno}: {node.value.id}.{node.attr}")
    assert crossings == []


def test_imports_inside_functions_are_only_the_ones_with_a_reason() -> None:
    late = set()
    for path in project_modules().values():
        tree = ast.parse((ROOT / path).read_text())
        for function in ast.walk(tree):
            if not isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            for node in ast.walk(function):
                if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] in PACKAGES:
                    late.add((str(path), function.name))
    assert late <= LATE_IMPORTS, f"hoist these imports to the module top: {sorted(late - LATE_IMPORTS)}"
