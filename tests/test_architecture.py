"""The package layering holds: no import cycle between our modules, dependencies point down only,
`data` and `models` never import each other, `metrics`, `media` and `ops` stay at the bottom.

Read from the source with `ast` (function-level imports included, since they can hide a cycle),
so the test fails the moment a forbidden import is written, whether or not it runs.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
from helpers.common import REPO

PACKAGE = Path(__file__).resolve().parents[1] / "vsr_lab"

# Layer of each top-level part of vsr_lab: a module may import only parts of its own layer or below.
LAYERS = {
    "ops": 0, "errors": 0, "registry": 0, "console": 0, "devices": 0, "json_output": 0,
    "config": 1, "media": 1,
    "data": 2, "models": 2, "metrics": 2, "losses": 2,
    "tracking": 3,
    "training": 4, "inference": 4, "evaluation": 4, "reporting": 4,
    "ablation": 5, "studies": 5, "benchmarks": 5,
    "commands": 6, "cli": 6, "__main__": 6, "__init__": 6,
}
# Same-layer pairs that must stay apart, and parts that may use only the bottom layer.
FORBIDDEN = {("data", "models"), ("models", "data")}
BOTTOM_ONLY = {"metrics": {"ops", "errors", "registry"}, "ops": set(),
               "media": {"ops", "errors", "console", "registry"}}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> set[str]:
    """vsr_lab modules imported anywhere in the file (absolute names)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("vsr_lab"))
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("vsr_lab") and node.level == 0:
            for alias in node.names:  # `from vsr_lab.x import y` may name a submodule y
                sub = f"{node.module}.{alias.name}"
                is_module = (PACKAGE.parent / (sub.replace(".", "/") + ".py")).exists() or \
                    (PACKAGE.parent / sub.replace(".", "/")).is_dir()
                found.add(sub if is_module else node.module)
    return found


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    return {module_name(p): imports_of(p) for p in PACKAGE.rglob("*.py")}


def part(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """A cycle of the import graph (a module importing its own package's __init__ excluded)."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for dep in sorted(graph.get(node, ())):
            if node.startswith(dep + "."):  # a submodule importing its parent package: loads the parent first
                continue
            if state.get(dep) == 1:
                return stack[stack.index(dep):] + [dep]
            if dep in graph and state.get(dep) is None:
                found = visit(dep)
                if found:
                    return found
        stack.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if state.get(start) is None:
            cycle = visit(start)
            if cycle:
                return cycle
    return None


def test_every_part_has_a_layer(graph):
    assert {part(m) for m in graph} <= set(LAYERS), set(map(part, graph)) - set(LAYERS)


def test_no_import_cycle_between_modules(graph):
    assert find_cycle(graph) is None, " -> ".join(find_cycle(graph))


def test_no_import_cycle_between_packages(graph):
    packages = {}
    for module, deps in graph.items():
        packages.setdefault(part(module), set()).update(part(d) for d in deps if part(d) != part(module))
    assert find_cycle(packages) is None, " -> ".join(find_cycle(packages))


def wrong_imports(graph: dict[str, set[str]]) -> list[str]:
    """Every import that points up a layer, sideways between FORBIDDEN parts, or out of a BOTTOM_ONLY part."""
    wrong = []
    for module, deps in graph.items():
        src = part(module)
        for dep in deps:
            dst = part(dep)
            if dst == src:
                continue
            if LAYERS[dst] > LAYERS[src] or (src, dst) in FORBIDDEN or \
                    (src in BOTTOM_ONLY and dst not in BOTTOM_ONLY[src]):
                wrong.append(f"{module} imports {dep}")
    return sorted(wrong)


def test_dependencies_point_down(graph):
    wrong = wrong_imports(graph)
    assert not wrong, "\n".join(wrong)


def test_the_checker_sees_a_planted_cycle_and_a_sideways_import():
    """The checks can fail: a cycle, a data -> models import and media importing above the bottom
    layer (config, data) are caught."""
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"vsr_lab.models.x": {"vsr_lab.models"}, "vsr_lab.models": {"vsr_lab.models.x"}}) is None
    assert ("data", "models") in FORBIDDEN and LAYERS["metrics"] == LAYERS["models"]
    planted = {"vsr_lab.media.images": {"vsr_lab.config.schema", "vsr_lab.errors"},
               "vsr_lab.media.paths": {"vsr_lab.data.sampling"}}
    assert wrong_imports(planted) == ["vsr_lab.media.images imports vsr_lab.config.schema",
                                      "vsr_lab.media.paths imports vsr_lab.data.sampling"]


def test_one_commands_floor():
    """Every subcommand is a module of vsr_lab/commands listed in cli.COMMANDS, and parsers are
    declared nowhere else."""
    from vsr_lab.cli import COMMANDS

    commands = PACKAGE / "commands"
    declaring = {p.stem for p in commands.glob("*.py") if "def add_parser(" in p.read_text()}
    assert declaring == set(COMMANDS.values())
    elsewhere = [str(p.relative_to(PACKAGE)) for p in PACKAGE.rglob("*.py")
                 if "add_parser(" in p.read_text() and p.parent != commands and p.name != "cli.py"]
    assert not elsewhere, elsewhere


def test_tests_hold_tests_and_helpers_hold_the_rest():
    """tests/ holds test modules and conftest.py (the only place fixtures live); every other module
    is in the tests/helpers package, and nothing imports conftest."""
    tests = REPO / "tests"
    assert sorted(p.name for p in tests.glob("*.py") if not p.name.startswith("test_")) == ["conftest.py"]
    assert (tests / "helpers" / "__init__.py").is_file()
    modules = [*tests.glob("*.py"), *(tests / "helpers").glob("*.py")]
    assert not [p.name for p in modules if re.search(r"^\s*(from conftest import|import conftest)", p.read_text(), re.M)]
    fixtures = [p.name for p in modules if p.name != "conftest.py" and re.search(r"^def one_thread", p.read_text(), re.M)]
    assert not fixtures  # one `one_thread`, in conftest.py
