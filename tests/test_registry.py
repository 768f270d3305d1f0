"""Registries list their names from the source, without importing the modules that define them,
and what the source declares is exactly what registers; loading a config or asking for help
imports none of the heavy libraries (checked in a fresh interpreter)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from vsr_lab import registry
from vsr_lab.registry import Registry

from helpers.common import REPO

REGISTRIES = {name: value for name, value in vars(registry).items() if isinstance(value, Registry)}
HEAVY = ("lightning", "diffusers", "optuna", "mlflow", "pyiqa")


@pytest.mark.parametrize("name", sorted(REGISTRIES))
def test_declared_names_are_exactly_what_registers(name):
    reg = REGISTRIES[name]
    listed = set(reg.names())
    reg.load_all()
    assert set(reg._entries) == listed, (
        f"{name}: registered but not declared {sorted(set(reg._entries) - listed)}, "
        f"declared but not registered {sorted(listed - set(reg._entries))}")
    for entry, module in reg.declared.items():  # get(name) imports this module: it must define the entry
        assert module in sys.modules and entry in reg._entries


def test_the_scan_finds_literal_registrations_and_nothing_else(tmp_path, monkeypatch):
    package = tmp_path / "plugins"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text('from reg_under_test import R\n@R.register("one")\nclass One: ...\n'
                                   'R.register( "two" )(object)\n')
    (package / "b.py").write_text('from reg_under_test import R\nfor n in ("three",):\n    R.register(n)(object)\n'
                                  '# OTHER.register("not-ours") names another registry\n')
    monkeypatch.syspath_prepend(str(tmp_path))
    reg = Registry("thing", "plugins")
    reg.symbol = "R"
    monkeypatch.setitem(sys.modules, "reg_under_test", type(sys)("reg_under_test"))
    sys.modules["reg_under_test"].R = reg
    assert reg.declared == {"one": "plugins.a", "two": "plugins.a"}  # a computed name is not seen
    assert reg.get("one").__name__ == "One" and "plugins.b" not in sys.modules  # only the defining module
    reg.load_all()
    assert set(reg._entries) == {"one", "two", "three"}  # so the test above would fail for it


def _imports_after(*argv: str) -> dict:
    code = ("import json, sys\nfrom vsr_lab.cli import main\n"
            "try:\n    rc = main(sys.argv[1:])\nexcept SystemExit as e:\n    rc = e.code\n"
            f"print(json.dumps({{'rc': rc, 'heavy': sorted({{m.split('.')[0] for m in sys.modules}} & set({HEAVY!r}))}}))")
    out = subprocess.run([sys.executable, "-c", code, *argv], cwd=REPO, capture_output=True, text=True, timeout=120)
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("argv", [
    ("fit", "--config", "ablations/no_pixel_gan.yaml", "--print-config"),
    ("fit", "--config", "experiments/instavsr_tiny_realworld.yaml", "--print-config"),
    ("fit", "--config", "experiments/instavsr_sd21.yaml", "--print-config"),
    ("--help",),
    ("fit", "--config", "ablations/no_pixel_gan.yaml", "model.flow.estimator=nope"),  # a bad choice: one line
])
def test_loading_a_config_and_help_import_no_heavy_library(argv):
    result = _imports_after(*argv)
    assert result["rc"] in (0, 2) and result["heavy"] == [], result
