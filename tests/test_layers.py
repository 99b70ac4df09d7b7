"""The top-level folders are layers; imports run one way, from the command line down to config.

    config  <-  schemas  <-  aggregates  <-  sinks  <-  alerts  <-  streams  <-  api  <-  replaylens (command line)

Any later layer (api, alerts, ...) must be added to LAYERS at its place. Installed, every folder
lives under the `replaylens.` name; a bare `import schemas` would work only from a checkout.
"""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LAYERS = ["config", "schemas", "aggregates", "sinks", "alerts", "streams", "api", "replaylens"]
LEVEL = {name: i for i, name in enumerate(LAYERS)}


def imported_modules(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(), str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module))
    return found


def layer_of(module: str) -> str | None:
    parts = module.split(".")
    if parts[0] != "replaylens":
        return None
    if len(parts) > 1 and parts[1] in LEVEL:
        return parts[1]
    return "replaylens"


def test_no_import_runs_upward():
    upward = []
    for layer in LAYERS:
        for path in sorted((ROOT / layer).rglob("*.py")):
            for lineno, module in imported_modules(path):
                target = layer_of(module)
                if target is not None and LEVEL[target] > LEVEL[layer]:
                    upward.append(f"{path.relative_to(ROOT)}:{lineno} imports {module}")
    assert not upward, "imports from a lower layer to a higher one:\n" + "\n".join(upward)


def test_code_imports_layers_by_their_installed_name():
    bare = []
    for folder in LAYERS + ["tests", "bench", "scripts"]:
        for path in sorted((ROOT / folder).rglob("*.py")):
            for lineno, module in imported_modules(path):
                if module.split(".")[0] in LEVEL and module.split(".")[0] != "replaylens":
                    bare.append(f"{path.relative_to(ROOT)}:{lineno} imports {module}")
    assert not bare, "use replaylens.<layer>, the installed name:\n" + "\n".join(bare)
