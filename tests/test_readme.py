"""The README's examples are the code's: every fenced YAML block passes the schema (and equals the
shipped file it is labelled as), every fenced command line names a subcommand, flags and
overrides that exist, every tool it runs is installed by setup.cfg, and the defaults it states
are the ones `--help` prints."""

from __future__ import annotations

import argparse
import configparser
import re
import shlex
from pathlib import Path

import pytest
import yaml

from vsr_lab.config.loading import expand_configs
from vsr_lab.cli import build_parser
from vsr_lab.config import load_config
from vsr_lab.config.schema import TrackingConfig, VSRConfig
from vsr_lab.errors import UserError
from vsr_lab.studies.search_space import parse_search_space

from conftest import REPO

README = (REPO / "README.md").read_text()
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.M | re.S)
LABEL = re.compile(r"^#\s*(\S+\.ya?ml)\b")  # `# experiments/sweep_tiny.yaml ...`: the block shows that file
# Programs a README command may run, and the setup.cfg requirement that installs each.
TOOLS = {"pytest": "dev:pytest", "mlflow ui": "install:mlflow", "mlflow server": "install:mlflow",
         "jupyter nbconvert": "dev:nbconvert", "jupyter execute": "dev:nbclient", "torchrun": "install:torch"}
SETUP_STEPS = ("python3 -m venv", ". .venv/bin/activate", "source .venv/bin/activate", "cd ")


def fenced(*languages: str) -> list[str]:
    return [body for lang, body in FENCE.findall(README) if lang in languages]


def yaml_blocks() -> list[str]:
    return fenced("yaml", "yml")


def command_lines() -> list[tuple[str, str | None]]:
    """(command, the error the README says it gives or None) for each command of the bash blocks:
    `\\` continuations joined, quoted strings over several lines kept whole, `&&`/`;`/`&` split."""
    found = []
    for body in fenced("bash", "sh", "shell", "console"):
        buffer = ""
        for line in body.replace("\\\n", " ").splitlines():
            expected = re.match(r"^#\s*error:\s*(.*)", line.strip())
            if expected and found and not buffer:  # `# error: ...` under a command: what it must fail with
                found[-1] = (found[-1][0], expected.group(1))
                continue
            buffer = f"{buffer}\n{line}" if buffer else line
            try:
                lexer = shlex.shlex(buffer, posix=True, punctuation_chars=";&|")
                lexer.whitespace_split, lexer.commenters = True, "#"
                tokens = list(lexer)
            except ValueError:  # an open quote: the command goes on on the next line
                continue
            buffer = ""
            command: list[str] = []
            for token in tokens + [";"]:
                if token in (";", "&", "&&", "|", "||"):
                    if command:
                        found.append((shlex.join(command), None))
                    command = []
                else:
                    command.append(token)
    return found


def strict(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """No abbreviated flags: `--seed` must not pass for `--seeds`."""
    parser.allow_abbrev = False
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                strict(sub)
    return parser


def requirements() -> set[str]:
    cfg = configparser.ConfigParser()
    cfg.read(REPO / "setup.cfg")
    name = lambda line: re.split(r"[<>=!~;\[ ]", line.strip(), maxsplit=1)[0].lower()  # noqa: E731
    got = {f"install:{name(x)}" for x in cfg["options"]["install_requires"].splitlines() if x.strip()}
    for extra, text in cfg["options.extras_require"].items():
        got |= {f"{extra}:{name(x)}" for x in text.splitlines() if x.strip()}
    return got


def check_yaml_block(block: str, tmp_path: Path) -> None:
    """Raises (AssertionError or UserError naming the problem) when the block drifted."""
    data = yaml.safe_load(block)
    assert isinstance(data, dict), "a config block must be a mapping"
    label = LABEL.match(block.lstrip())
    if label:
        shipped = REPO / label.group(1)
        assert shipped.is_file(), f"labelled as {label.group(1)}, which is not a shipped file"
        assert yaml.safe_load(shipped.read_text()) == data, f"differs from the shipped {label.group(1)}"
        path = shipped  # same content: checking the file checks the block, with its `extends:` resolved
    else:
        path = tmp_path / "block.yaml"
        path.write_text(block)
    cfg = load_config(path)
    if "sweep" in data:
        parse_search_space(cfg, str(path))


def _unwrap(tokens: list[str]) -> list[str]:
    """Drop `VAR=value` prefixes and launchers that only run the command (nice, srun, timeout)."""
    while tokens:
        if re.match(r"^[A-Z_]+=", tokens[0]):
            tokens = tokens[1:]
        elif tokens[0] == "nice":
            tokens = tokens[3:] if tokens[1:2] == ["-n"] else tokens[1:]
        elif tokens[0] == "timeout":
            tokens = tokens[2:]
        elif tokens[0] == "srun":  # SLURM's launcher (the cluster's, not ours)
            tokens = tokens[1:]
        else:
            return tokens
    return tokens


def _cli_args(tokens: list[str]) -> list[str] | None:
    """The vsr_lab command line of `python -m vsr_lab ...` or `torchrun ... -m vsr_lab ...`."""
    if tokens[0] in ("python", "python3", "torchrun"):
        for i in range(1, len(tokens) - 1):
            if tokens[i:i + 2] == ["-m", "vsr_lab"]:
                return tokens[i + 2:]
    return None


def check_command(line: str, expected_error: str | None = None) -> None:
    """Raises when the line's subcommand, flags, overrides or tool do not exist; with
    `expected_error` (the README's `# error: ...` under it), when it does not fail on that key."""
    tokens = _unwrap(shlex.split(line))
    if not tokens or line.startswith(SETUP_STEPS):
        return
    if tokens[:2] == ["pip", "install"]:
        extras = re.findall(r"\[(\w+)\]", line)
        assert all(any(r.startswith(f"{e}:") for r in requirements()) for e in extras), f"no extra {extras}"
        return
    args = _cli_args(tokens)
    if args is not None:
        if tokens[0] == "torchrun":
            assert "install:torch" in requirements()
        try:
            parsed = strict(build_parser()).parse_args(args)
        except SystemExit:
            raise AssertionError(f"the CLI parser rejects it: {' '.join(args)}") from None
        overrides = getattr(parsed, "overrides", None) or []
        configs = [parsed.config] if getattr(parsed, "config", None) else []
        if getattr(parsed, "configs", None):
            configs = expand_configs(",".join(str(REPO / p.strip()) for p in parsed.configs.split(",")))
        configs = [c for c in configs if (REPO / c).is_file()]  # runs/.../config.yaml: the user's own files
        if expected_error is not None:
            key = re.search(r"key '[^']+'", expected_error)
            with pytest.raises(UserError) as caught:
                for config in configs:
                    load_config(REPO / config, overrides)
            assert key is None or key.group(0) in str(caught.value), f"fails on another key: {caught.value}"
            return
        for config in configs:
            try:
                load_config(REPO / config, overrides)
            except UserError as exc:  # keys and values fit; only a file the user brings is absent here
                if not re.search(r"file not found|no such file", str(exc), re.I):
                    raise
        return
    if tokens[:2] in (["python", "-m"], ["python3", "-m"]):  # one of our modules run as a script
        module = REPO / (tokens[2].replace(".", "/") + ".py")
        assert tokens[2].startswith("vsr_lab.") and module.is_file(), f"no module {tokens[2]}"
        return
    if tokens[:2] in (["python", "-c"], ["python3", "-c"]):  # a snippet: it must at least compile
        compile(tokens[2], "<README snippet>", "exec")
        return
    tool = " ".join(tokens[:2]) if tokens[0] in ("jupyter", "mlflow") else tokens[0]
    assert tool in TOOLS, f"{tool!r}: not a tool the README test knows how setup.cfg installs"
    assert TOOLS[tool] in requirements(), f"{tool!r} needs {TOOLS[tool]} in setup.cfg"


def test_readme_has_the_blocks_this_test_reads():
    assert len(yaml_blocks()) >= 2 and len(command_lines()) >= 15
    assert any(error for _, error in command_lines())  # the documented mistakes are read too
    assert any(LABEL.match(b.lstrip()) for b in yaml_blocks())


@pytest.mark.parametrize("block", yaml_blocks(), ids=lambda b: b.strip().splitlines()[0][:40])
def test_every_yaml_block_passes_the_schema_and_equals_its_file(block, tmp_path):
    check_yaml_block(block, tmp_path)


@pytest.mark.parametrize("line, expected_error", command_lines(), ids=lambda x: (x or "")[:60])
def test_every_command_line_exists_in_the_cli(line, expected_error):
    check_command(line, expected_error)


@pytest.mark.parametrize("drifted, needle", [
    # a shipped file's block that no longer matches it, and one the schema or the study rules refuse
    ("# experiments/sweep_tiny.yaml\nextends: instavsr_tiny.yaml\n", "differs from the shipped"),
    ("loss:\n  temporall: {weight: 1.0}\n", "temporall"),
    ("sweep:\n  objectives: [val/ewarp, val/psnr]\n  directions: [minimize, maximize]\n  pruner: median\n"
     "  params:\n    optim.lr: {type: float, low: 1.0e-4, high: 1.0e-3}\n", "single-objective studies only"),
])
def test_the_yaml_check_catches_drift(drifted, needle, tmp_path):
    with pytest.raises((AssertionError, UserError), match=needle):
        check_yaml_block(drifted, tmp_path)


@pytest.mark.parametrize("drifted, needle", [
    ("python -m vsr_lab ablate --configs 'ablations/*.yaml' --seed 3", "rejects"),  # abbreviation of --seeds
    ("python -m vsr_lab fitt --config ablations/full.yaml", "rejects"),
    ("python -m vsr_lab fit --config ablations/full.yaml optim.lrr=5e-4", "optim.lrr"),
    ("jupyter lab notebooks/compare_ablations.ipynb", "not a tool"),
    ("python -m vsr_lab.inference.no_such_module clips/", "no module"),
])
def test_the_command_check_catches_drift(drifted, needle):
    with pytest.raises((AssertionError, UserError), match=needle):
        check_command(drifted)


def _help(*command: str) -> str:
    parser = build_parser()
    for name in command:
        parser = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices[name]
    return " ".join(parser.format_help().split())


@pytest.mark.parametrize("value, commands", [
    (TrackingConfig.tracking_uri, [("fit",), ("validate",), ("compare",)]),
    (f"{TrackingConfig.artifact_location}/", [("fit",)]),
    (f"{VSRConfig.output_dir}/", [("fit",), ("runs", "gc")]),
    ("sqlite:///optuna.db", [("sweep",)]),
])
def test_documented_defaults_are_in_help_and_in_the_readme(value, commands):
    assert value in README
    for command in commands:
        assert value in _help(*command), f"{' '.join(command)} --help does not say {value}"
