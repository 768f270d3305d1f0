"""The manual (README.md) and the evidence (docs/*.md, docs/results/*.md) are the code's.

In every one of those markdown files:
- every fenced YAML block passes the schema (and equals the shipped file it is labelled as);
- every command (each line of a fenced bash block, and each inline `python -m vsr_lab ...`,
  `pytest ...` or `python tests/...` span) names a subcommand, flags and overrides that exist, a
  test or script file that exists, or a tool setup.cfg installs;
- every relative link points at a file that exists, and its `#anchor` at a heading of that file;
- every figure has its command. A section is the text under one heading, down to the next
  heading of any level. It states a measured figure when, outside code (fenced blocks and
  `inline code`), a number carries a unit of measure (dB, ms, s, min, minutes, seconds, hours,
  GB, GiB, MB, MiB, %, CPU-s, frames/s, or a ratio such as 2.5x or 13 x, but not a size such as
  64 x 64), or a table body cell holds a decimal number (31.64, 0.776; not one that follows a word,
  as a name or a setting does: SD 2.1, ratio 0.25). Such a section must hold the command that
  made it: a fenced shell block, or an inline command span as above (or `.ci/run`). Settings
  written as `code` in a table are not figures.
The defaults the README states are the ones `--help` prints."""

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

from helpers.common import REPO

DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md")), *sorted((REPO / "docs/results").glob("*.md"))]
README = (REPO / "README.md").read_text()
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.M | re.S)
SHELL = ("bash", "sh", "shell", "console")
LABEL = re.compile(r"^#\s*(\S+\.ya?ml)\b")  # `# experiments/sweep_tiny.yaml ...`: the block shows that file
INLINE_CODE = re.compile(r"`(?:[^`\n]|\n(?!\n))+`")  # inline code: within one paragraph
# An inline span that is a whole command (`python -m vsr_lab` alone, or with a <placeholder>, is prose).
INLINE_COMMAND = re.compile(r"^(python3? -m vsr_lab \w[^<]*|python3? -m vsr_lab\.\S+ .*|python3? tests/\S+.*"
                            r"|pytest( .*)?|\.ci/run)$")
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*$")
UNIT = re.compile(r"(?<![\w.])\d+(?:[.,]\d+)*\s?"  # a number, then a unit or a ratio's x (not 64 x 64)
                  r"(?:dB|ms|s|min|minutes?|seconds?|hours?|GB|GiB|MB|MiB|%|CPU-s|frames/s)(?![\w/])"
                  r"|(?<![\w.])\d+(?:\.\d+)?\s?x(?!\w)(?!\s*\d)")
SHELL_VARIABLE = re.compile(r"\$\{?[A-Z_][A-Z0-9_]*\}?")
DECIMAL = re.compile(r"(?<![\w.])(?<![A-Za-z] )\d+\.\d+")  # 31.64, not SD 2.1
# Programs a documented command may run, and the setup.cfg requirement that installs each.
TOOLS = {"pytest": "dev:pytest", "mlflow ui": "install:mlflow", "mlflow server": "install:mlflow",
         "jupyter nbconvert": "dev:nbconvert", "jupyter execute": "dev:nbclient", "torchrun": "install:torch"}
SETUP_STEPS = ("python3 -m venv", ". .venv/bin/activate", "source .venv/bin/activate", "cd ",
               "export ", "read ")  # the shell's own: a variable set (a password typed without echo)
CLUSTER_TOOLS = ("sbatch",)  # SLURM's, on the cluster: nothing of ours to check


def fenced(text: str, *languages: str) -> list[str]:
    return [body for lang, body in FENCE.findall(text) if lang in languages]


def prose(text: str) -> str:
    """The text without fenced blocks and inline code, each replaced by as many line breaks as it
    held, so line numbers and headings stay where they are."""
    blank = lambda m: "\n" * m.group(0).count("\n")  # noqa: E731
    return INLINE_CODE.sub(blank, FENCE.sub(blank, text))


def command_lines(text: str) -> list[tuple[str, str | None]]:
    """(command, the error the text says it gives or None) for each command of the shell blocks
    (`\\` continuations joined, quoted strings over several lines kept whole, `&&`/`;`/`&` split)
    and of the inline command spans."""
    found = []
    for body in fenced(text, *SHELL):
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
    no_fences = FENCE.sub("", text)
    spans = (" ".join(span.strip("`").split()) for span in INLINE_CODE.findall(no_fences))
    found += [(span, None) for span in spans if INLINE_COMMAND.match(span)]
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


def _check_cli(tokens: list[str], args: list[str], expected_error: str | None) -> None:
    if tokens[0] == "torchrun":
        assert "install:torch" in requirements()
    try:
        parsed = strict(build_parser()).parse_args(args)
    except SystemExit as exc:
        if exc.code == 0:  # --help
            return
        raise AssertionError(f"the CLI parser rejects it: {' '.join(args)}") from None
    overrides = getattr(parsed, "overrides", None) or []
    configs = [parsed.config] if getattr(parsed, "config", None) else []
    if getattr(parsed, "configs", None):
        configs = expand_configs(",".join(str(REPO / p.strip()) for p in parsed.configs.split(",")))
    configs = [c for c in configs if (REPO / c).is_file()]  # runs/.../config.yaml: the user's own files
    if expected_error is not None:
        with pytest.raises(UserError) as caught:
            for config in configs:
                load_config(REPO / config, overrides)
        assert str(caught.value) == expected_error, f"fails with another message: {caught.value}"
        return
    for config in configs:
        try:
            load_config(REPO / config, overrides)
        except UserError as exc:  # keys and values fit; only a file the user brings is absent here
            if not re.search(r"file not found|no such file", str(exc), re.I):
                raise


def check_command(line: str, expected_error: str | None = None) -> None:
    """Raises when the line's subcommand, flags, overrides, file or tool do not exist; with
    `expected_error` (the text's `# error: ...` under it), when it does not fail on that key."""
    # a lone shell variable is a value the shell gives (a SLURM array index): checked as 0
    tokens = ["0" if SHELL_VARIABLE.fullmatch(t) else t for t in _unwrap(shlex.split(line))]
    if not tokens or line.startswith(SETUP_STEPS):
        return
    if tokens[0] in CLUSTER_TOOLS:
        return
    if tokens[:2] == ["pip", "install"]:
        extras = re.findall(r"\[(\w+)\]", line)
        assert all(any(r.startswith(f"{e}:") for r in requirements()) for e in extras), f"no extra {extras}"
        return
    args = _cli_args(tokens)
    if args is not None:
        _check_cli(tokens, args, expected_error)
        return
    if tokens[:2] in (["python", "-m"], ["python3", "-m"]):  # one of our modules run as a script
        module = REPO / (tokens[2].replace(".", "/") + ".py")
        assert tokens[2].startswith("vsr_lab.") and module.is_file(), f"no module {tokens[2]}"
        return
    if tokens[:2] in (["python", "-c"], ["python3", "-c"]):  # a snippet: it must at least compile
        compile(tokens[2], "<README snippet>", "exec")
        return
    if tokens[0] in ("python", "python3") or tokens[0].startswith(".ci/"):  # a script of this repository
        script = tokens[1] if tokens[0].startswith("python") else tokens[0]
        assert (REPO / script).is_file(), f"no script {script}"
        return
    tool = " ".join(tokens[:2]) if tokens[0] in ("jupyter", "mlflow") else tokens[0]
    assert tool in TOOLS, f"{tool!r}: not a tool the README test knows how setup.cfg installs"
    assert TOOLS[tool] in requirements(), f"{tool!r} needs {TOOLS[tool]} in setup.cfg"
    if tool == "pytest":  # the test files it names
        for path in (t.split("::")[0] for t in tokens[1:] if t.startswith("tests/")):
            assert (REPO / path).is_file(), f"no test file {path}"


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces as hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def anchors(text: str) -> set[str]:
    """The anchors of a file's headings; a repeated heading gets -1, -2, ... as on GitHub."""
    counts: dict[str, int] = {}
    found = set()
    for line in FENCE.sub("", text).splitlines():
        heading = HEADING.match(line)
        if heading:
            base = slug(heading.group(2))
            found.add(f"{base}-{counts[base]}" if base in counts else base)
            counts[base] = counts.get(base, 0) + 1
    return found


def link_problems(path: Path, text: str) -> list[str]:
    """Relative links whose file or `#anchor` does not exist."""
    found = []
    for target in LINK.findall(FENCE.sub("", INLINE_CODE.sub("", text))):
        if re.match(r"^[a-z]+:", target):  # http:, https:, mailto:
            continue
        file, _, anchor = target.partition("#")
        linked = (path.parent / file).resolve() if file else path
        if not linked.exists():
            shown = linked.relative_to(REPO) if linked.is_relative_to(REPO) else linked
            found.append(f"link {target}: no file {shown}")
        elif anchor and linked.suffix == ".md" and anchor not in anchors(linked.read_text()):
            found.append(f"link {target}: no heading #{anchor} in {linked.name}")
    return found


def sections(text: str) -> list[tuple[int, str, str]]:
    """(line number, heading, text) of each section: from a heading to the next one."""
    found, start, title = [], 1, "(top)"
    lines = text.splitlines()
    bare = prose(text).splitlines()  # headings inside fences (`# a comment`) are not headings
    for i, line in enumerate(bare + ["# (end)"], start=1):
        if HEADING.match(line):
            if i > start:  # a file that opens with its heading has no text above it
                found.append((start, title, "\n".join(lines[start - 1:i - 1])))
            start, title = i, line.lstrip("#").strip()
    return found


def figures(section: str) -> list[str]:
    """The measured figures a section states (the rule in this module's docstring)."""
    got = [m.group(0) for m in UNIT.finditer(prose(section))]
    in_table = False
    for line in prose(section).splitlines():
        if re.match(r"^\|[-:| ]+\|$", line.strip()):
            in_table = True
        elif in_table and line.startswith("|"):
            got += DECIMAL.findall(line)
        else:
            in_table = False
    return got


def has_command(section: str) -> bool:
    return bool(fenced(section, *SHELL)) or any(
        INLINE_COMMAND.match(" ".join(span.strip("`").split())) for span in INLINE_CODE.findall(section))


def figure_problems(text: str) -> list[str]:
    return [f"line {start}, section {title!r}: figures {figures(body)[:4]} without a command"
            for start, title, body in sections(text) if figures(body) and not has_command(body)]


def problems(path: Path, text: str, tmp_path: Path) -> list[str]:
    """Everything drifted in one markdown file, one message each."""
    found = link_problems(path, text) + figure_problems(text)
    for block in fenced(text, "yaml", "yml"):
        try:
            check_yaml_block(block, tmp_path)
        except Exception as exc:  # a YAML syntax error too
            found.append(f"yaml block {block.strip().splitlines()[0]!r}: {exc}")
    for line, expected_error in command_lines(text):
        try:
            check_command(line, expected_error)
        except (Exception, pytest.fail.Exception) as exc:  # every kind of drift, listed, not the first only
            found.append(f"command {line!r}: {exc}")
    return found


def test_the_docs_have_the_blocks_this_test_reads():
    texts = [p.read_text() for p in DOCS]
    assert len(DOCS) >= 15 and (REPO / "docs" / "results").is_dir()
    assert fenced(README, "yaml") and len(command_lines(README)) >= 15
    assert sum(len(fenced(text, "yaml")) for text in texts) >= 3
    assert any(error for text in texts for _, error in command_lines(text))  # the documented mistakes are read too
    assert any(LABEL.match(b.lstrip()) for text in texts for b in fenced(text, "yaml"))
    assert any(figures(body) for text in texts for _, _, body in sections(text))


def test_the_readme_is_a_manual_of_at_most_350_lines():
    assert len(README.splitlines()) <= 350
    assert "python -m vsr_lab fit --config ablations/" in README
    assert 'pip install -e ".[dev]" && python -m vsr_lab fit --config ablations/no_pixel_gan.yaml' in README


@pytest.mark.parametrize("path", DOCS, ids=lambda p: str(p.relative_to(REPO)))
def test_every_block_command_link_and_figure_is_right(path, tmp_path):
    found = problems(path, path.read_text(), tmp_path)
    assert not found, "\n".join([f"{path.relative_to(REPO)} drifted from the code:", *found])


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
    ("pytest -m slow tests/test_no_such_file.py", "no test file"),
    ("python tests/no_such_script.py /tmp/mf", "no script"),
    ("python -m vsr_lab ablate --configs 'ablations/*.yaml' --cells $SLURM_ARRAY_TASK_ID", "rejects"),
])
def test_the_command_check_catches_drift(drifted, needle):
    with pytest.raises((AssertionError, UserError), match=needle):
        check_command(drifted)


def test_a_shell_variable_stands_for_a_value():
    check_command("srun python -m vsr_lab ablate --configs 'ablations/*.yaml' --cell $SLURM_ARRAY_TASK_ID")
    with pytest.raises(AssertionError, match="rejects"):  # the value must still fit the flag
        check_command("python -m vsr_lab ablate --configs 'ablations/*.yaml' --seeds ${SEEDS} --cell x")


def test_a_documented_error_must_be_the_whole_message():
    line = "python -m vsr_lab fit --config ablations/full.yaml data.batch_size=-1"
    check_command(line, "command line: key 'data.batch_size' must be >= 1; got -1")
    with pytest.raises(AssertionError, match="fails with another message"):  # the source it names drifted
        check_command(line, "ablations/full.yaml: key 'data.batch_size' must be >= 1; got -1")
    with pytest.raises(pytest.fail.Exception):  # a command documented as failing that works
        check_command("python -m vsr_lab fit --config ablations/full.yaml data.batch_size=2", "anything")


@pytest.mark.parametrize("doc, old, new, needle", [
    # a flag that does not exist, a renamed subcommand and a misspelt override key in a fenced block, an
    # inline command naming a test file that is not there, a YAML block the schema refuses, one that no
    # longer equals its shipped file, and links to a file and to a heading that do not exist
    ("docs/pruning.md", "--recover-batches 100", "--recovery-batches 100", "the CLI parser rejects it: prune-study"),
    ("docs/benchmarks.md", "python -m vsr_lab bench --train", "python -m vsr_lab benchmark --train",
     "the CLI parser rejects it: benchmark --train"),
    ("docs/perceptual.md", "metrics.pretrained.niqe_local=", "metrics.pretrain.niqe_local=", "metrics.pretrain"),
    ("docs/testing.md", "`pytest -m slow tests/test_config_fuzz.py`", "`pytest -m slow tests/test_config_fuzzing.py`",
     "no test file tests/test_config_fuzzing.py"),
    ("docs/realworld.md", "    usm_gt: {enabled: false}", "    usm_gtt: {enabled: false}", "usm_gtt"),
    ("docs/studies.md", "  max_batches: 200\n", "  max_batches: 300\n",
     "differs from the shipped experiments/sweep_tiny.yaml"),
    ("README.md", "(docs/metrics.md)", "(docs/metric.md)", "no file docs/metric.md"),
    ("README.md", "(docs/temporal.md#seed-study-what-the-temporal-components-buy)", "(docs/temporal.md#seed-study)",
     "no heading #seed-study in temporal.md"),
])
def test_a_drifted_doc_is_caught(doc, old, new, needle, tmp_path):
    text = (REPO / doc).read_text()
    assert old in text, f"{doc} no longer holds {old!r}: pick another line to drift"
    found = problems(REPO / doc, text.replace(old, new, 1), tmp_path)
    assert any(needle in p for p in found), found


def test_a_figure_without_its_command_is_caught():
    section = "## Speed\n\nOne fit takes 11 min 05 s and ends at 32.62 dB.\n"
    table = "## Scores\n\n| config | val/psnr |\n|---|---|\n| full | 32.169 |\n"
    settings = "## Settings\n\n| key | default |\n|---|---|\n| `loss.temporal.weight` | `1.0` |\n| SD 2.1 | ratio 0.5 |\n"
    assert figure_problems(section) == [
        "line 1, section 'Speed': figures ['11 min', '05 s', '32.62 dB'] without a command"]
    assert figure_problems(table) and not figure_problems(settings)
    assert not figure_problems(section + "\n```bash\npython -m vsr_lab fit --config ablations/full.yaml\n```\n")
    assert not figure_problems(section + "Measured with `python -m vsr_lab fit --config ablations/full.yaml`.\n")
    assert not figure_problems("## Sizes\n\nCrops of 64 x 64 pixels, `trainer.max_batches=600`.\n")
    bench = (REPO / "docs" / "benchmarks.md").read_text()
    first_block = FENCE.search(bench).group(0)
    assert [p for p in figure_problems(bench.replace(first_block, "", 1)) if "'The quick start'" in p]


def test_every_heading_anchor_rule_matches_github():
    assert slug("Paper-scale training: LoRA, gradient checkpointing, bf16") == \
        "paper-scale-training-lora-gradient-checkpointing-bf16"
    assert slug("`upscale --bench` on a GPU") == "upscale---bench-on-a-gpu"
    assert anchors("# A\n## A\n```bash\n# A comment\n```\n") == {"a", "a-1"}


def _help(*command: str) -> str:
    parser = build_parser()
    for name in command:
        parser = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices[name]
    return " ".join(parser.format_help().split())


@pytest.mark.parametrize("value, commands", [
    (TrackingConfig.tracking_uri, [("fit",), ("validate",), ("compare",)]),
    (f"{TrackingConfig.artifact_location}/", [("fit",)]),
    (f"{VSRConfig.output_dir}/", [("fit",), ("runs", "gc")]),
    ("sqlite:///optuna.db", [("sweep",), ("ablate",)]),
])
def test_documented_defaults_are_in_help_and_in_the_readme(value, commands):
    assert value in README
    for command in commands:
        assert value in _help(*command), f"{' '.join(command)} --help does not say {value}"
