"""The package's imports run down the data path and never in a circle.

Walks every module's imports with ``ast`` (function-level and ``TYPE_CHECKING`` ones too: a lazy
import is still a dependency) and checks three rules: no import cycle between modules; a layer
imports only layers below it (or its own subpackage); typer and rich are imported only under
``bulkinvoke/cli/``.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import bulkinvoke

PACKAGE = Path(bulkinvoke.__file__).parent

# Higher imports lower, never the reverse. Subpackages of one layer do not import each other.
LAYERS: dict[str, int] = {
    "base": 0,
    "manifest": 1,
    "ledger": 1,
    "calls": 2,
    "results": 2,
    "emulator": 2,
    "scale": 3,
    "run": 4,
    "reports": 5,
    "export": 5,
    "cli": 6,
    "__main__": 7,
}
UI_PACKAGES = ("typer", "rich")


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join([*base, node.module] if node.module else base)
            else:
                module = node.module or ""
            found.add(module)
            # `from bulkinvoke.x import y` may import the submodule y.
            found.update(f"{module}.{alias.name}" for alias in node.names)
    return found


def _graph() -> dict[str, set[str]]:
    modules = {_module_name(path): path for path in PACKAGE.rglob("*.py")}
    return {
        name: {dep for dep in _imports(path) if dep in modules and dep != name}
        for name, path in modules.items()
    }


def _layer(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in LAYERS else "base"


def test_no_module_imports_in_a_circle() -> None:
    graph = _graph()
    done: set[str] = set()

    def visit(module: str, path: list[str]) -> None:
        if module in path:
            cycle = [*path[path.index(module) :], module]
            raise AssertionError("import cycle: " + " -> ".join(cycle))
        if module in done:
            return
        for dep in sorted(graph[module]):
            visit(dep, [*path, module])
        done.add(module)

    for module in sorted(graph):
        visit(module, [])


def test_every_subpackage_has_a_layer() -> None:
    subpackages = {p.parent.name for p in PACKAGE.glob("*/__init__.py")}
    assert subpackages <= set(LAYERS), subpackages - set(LAYERS)


def test_imports_only_go_down_the_layers() -> None:
    wrong = []
    for module, deps in _graph().items():
        if module == "bulkinvoke":
            continue
        here = _layer(module)
        for dep in deps:
            there = _layer(dep) if dep != "bulkinvoke" else "base"
            if there != here and LAYERS[there] >= LAYERS[here]:
                wrong.append(f"{module} ({here}) imports {dep} ({there})")
    assert not wrong, "\n".join(sorted(wrong))


def test_typer_and_rich_live_only_in_the_cli() -> None:
    wrong = [
        f"{_module_name(path)} imports {dep}"
        for path in PACKAGE.rglob("*.py")
        if "cli" not in path.relative_to(PACKAGE).parts[:1]
        for dep in _imports(path)
        if dep.split(".")[0] in UI_PACKAGES
    ]
    assert not wrong, "\n".join(wrong)


def test_no_module_is_over_400_lines() -> None:
    long = {
        str(path.relative_to(PACKAGE)): lines
        for path in PACKAGE.rglob("*.py")
        if (lines := len(path.read_text().splitlines())) > 400
    }
    assert not long, long


def _documented_modules() -> set[str]:
    """Every module docs/ARCHITECTURE.md's table names, as a path under the package."""
    text = (PACKAGE.parent / "docs" / "ARCHITECTURE.md").read_text()
    table = text[: text.index("## Run directory layout")]
    found: set[str] = set()
    section = ""
    for line in table.splitlines():
        heading = re.match(r"\| \*\*(\w+)(/?)\*\*", line)
        if heading:
            section = heading[1] + "/" if heading[2] else ""
            continue
        cell = re.match(r"\| ([^|]+) \|", line)
        if cell:
            found.update(section + name for name in re.findall(r"`(\w+\.py)`", cell[1]))
    return found


def test_the_architecture_doc_names_every_module_and_only_modules() -> None:
    documented = _documented_modules()
    actual = {
        str(path.relative_to(PACKAGE))
        for path in PACKAGE.rglob("*.py")
        if path.name not in ("__init__.py", "__main__.py") and path.parent.name != "emulator"
    }
    assert documented - actual == set(), "named in docs/ARCHITECTURE.md but missing"
    assert actual - documented == set(), "missing from docs/ARCHITECTURE.md"


def test_the_cli_loads_no_heavy_library_until_a_command_runs() -> None:
    # `bulkinvoke --help` and typos must answer at once: botocore, pandas and pyarrow take
    # ~0.15 s to import, so the CLI modules import them inside the commands that need them.
    import subprocess
    import sys

    probe = (
        "import sys, bulkinvoke.cli.app; "
        "print(' '.join(m for m in ('botocore', 'boto3', 'pandas', 'pyarrow') if m in sys.modules))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert loaded == "", f"importing the CLI loads {loaded}"
