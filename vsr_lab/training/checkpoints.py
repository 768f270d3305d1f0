"""What a vsr_lab checkpoint holds, which layouts this version reads, and one-line errors for a
checkpoint that cannot be used (unreadable, another format version, another model).

The `vsr_lab` section of every checkpoint carries `format_version` and the note of that format.
A change to the layout (section keys, state-dict names) bumps CHECKPOINT_FORMAT and adds a note
to FORMAT_CHANGES saying what changed; raise OLDEST_READABLE when older files can no longer be
read. An older vsr_lab reading a newer file prints the note the file carries, so both sides say
what changed. tests/fixtures/ keeps a checkpoint of each format that must still load.
"""

from __future__ import annotations

from pathlib import Path

import torch

from vsr_lab.errors import UserError
from vsr_lab.models.state_fit import misfit
from vsr_lab.training.lora_checkpoint import BASE_WEIGHTS_KEY  # a LoRA checkpoint leaves frozen weights out

CKPT_KEY = "vsr_lab"
CHECKPOINT_FORMAT = 1
OLDEST_READABLE = 1
# format -> what it changed (format 1 also describes checkpoints written before the field existed)
FORMAT_CHANGES = {
    1: "vsr_lab section with config, run_name, run_dir, mlflow_run_id, batches_done; Lightning "
       "state_dict of generator.* and critics.{latent,pixel}.* (EMA runs: the average, raw weights "
       "in current_model_state; LoRA runs: frozen weights left out, named by vsr_lab_base_weights)",
}

# Keys every section has, whatever the format (older files may lack later additions).
REQUIRED_KEYS = ("config", "run_name", "run_dir")


def format_fields() -> dict:
    """The version fields written into each checkpoint's vsr_lab section."""
    return {"format_version": CHECKPOINT_FORMAT, "format_note": FORMAT_CHANGES[CHECKPOINT_FORMAT]}


def load_checkpoint(path: str | Path) -> dict:
    """The whole checkpoint, safely unpickled (tensors and plain data only), its section checked."""
    p = Path(path)
    if not p.is_file():
        raise UserError(f"checkpoint not found: {p}")
    try:
        ckpt = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unpickling/zip error means not a usable checkpoint
        raise UserError(f"{p}: not a readable checkpoint ({exc.__class__.__name__})") from None
    if not isinstance(ckpt, dict) or not isinstance(ckpt.get(CKPT_KEY), dict):
        raise UserError(f"{p}: not a vsr_lab checkpoint (no '{CKPT_KEY}' section)")
    check_format(ckpt[CKPT_KEY], p)
    return ckpt


def check_format(section: dict, path: Path) -> None:
    version = section.get("format_version", 1)  # files from before the field have format 1's layout
    if not isinstance(version, int) or isinstance(version, bool):
        raise UserError(f"{path}: '{CKPT_KEY}.format_version' must be a whole number; got {version!r}")
    if version > CHECKPOINT_FORMAT:
        note = section.get("format_note") or "no note"
        raise UserError(f"{path}: checkpoint format {version} is newer than this vsr_lab reads "
                        f"({OLDEST_READABLE}-{CHECKPOINT_FORMAT}); it changed: {note}. Upgrade vsr_lab")
    if version < OLDEST_READABLE:
        changes = "; ".join(f"format {v}: {FORMAT_CHANGES[v]}" for v in sorted(FORMAT_CHANGES)
                            if version < v <= CHECKPOINT_FORMAT)
        raise UserError(f"{path}: checkpoint format {version} is no longer read (this vsr_lab reads "
                        f"{OLDEST_READABLE}-{CHECKPOINT_FORMAT}); since then: {changes}")
    missing = [k for k in REQUIRED_KEYS if k not in section]
    if missing or not isinstance(section.get("config"), dict):
        raise UserError(f"{path}: the '{CKPT_KEY}' section lacks {', '.join(missing) or 'a config mapping'}")


def check_fits(module: torch.nn.Module, ckpt: dict, path: str | Path, cfg_container: dict) -> None:
    """The checkpoint's weights fit `module` (names and shapes), else one line that names the
    mismatch and the model keys whose config differs from the checkpoint's own."""
    saved = ckpt.get("state_dict")
    if not isinstance(saved, dict):
        raise UserError(f"{path}: no state_dict in the checkpoint")
    # LoRA: the frozen weights come from the pretrained folder, which the load checks itself
    problem = misfit(module.state_dict(), saved, check_missing=BASE_WEIGHTS_KEY not in ckpt)
    if not problem:
        return
    differ = sorted(_differing_keys(ckpt[CKPT_KEY]["config"], cfg_container),
                    key=lambda k: (not k.startswith("model."), k))  # the generator's shape first
    more = f" and {len(differ) - 4} more" if len(differ) > 4 else ""
    hint = (f"the config differs from the checkpoint's in {', '.join(differ[:4])}{more}" if differ else
            "the checkpoint was written by a model of another layout")
    raise UserError(f"{path}: does not fit the configured model: {problem}; {hint} "
                    "(omit --config to use the checkpoint's own)")


def _differing_keys(saved: dict, current: dict, prefix: str = "") -> list[str]:
    """Dotted keys that shape the weights (model.*, data.scale, critics) whose values differ."""
    out = []
    for k in sorted(set(saved) | set(current)):
        key = f"{prefix}{k}"
        a, b = saved.get(k), current.get(k)
        if isinstance(a, dict) and isinstance(b, dict):
            out += _differing_keys(a, b, key + ".")
        elif a != b and (key.startswith("model.") or key == "data.scale" or
                         (key.startswith("loss.adversarial") and key.endswith(".enabled")) or
                         (key.startswith("discriminator.") and key.endswith(("channels", "num_layers", "norm")))):
            out.append(f"{key} ({a!r} vs {b!r})")
    return out
