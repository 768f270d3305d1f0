"""Rules across config keys, all in this one module, checked by `load_config` before anything is
built (after each key's own rule, so a rule here may assume scale >= 1 and the like).

A rule is a function of the config decorated with `@cross_rule(key, ...)`, naming the keys it
reads (the error names the file or "command line" that set the last of them); it returns None
when the config is fine, else one line that names every one of those keys, the values and the
reason. It reads the config by attribute (`cfg.data.scale`, `cfg.discriminator[space]`): a
resolved view of plain values (config/loading.py ConfigView) or a DictConfig.
To add one: write the function here and a case in tests/test_config_rules.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable


@dataclass(frozen=True)
class CrossRule:
    keys: tuple[str, ...]
    check: Callable[[Any], "str | None"]


CROSS_RULES: list[CrossRule] = []


def cross_rule(*keys: str):
    def add(check: Callable[[Any], "str | None"]):
        CROSS_RULES.append(CrossRule(keys, check))
        return check
    return add


def first_broken_rule(cfg: Any) -> tuple[tuple[str, ...], str] | None:
    """(keys, message) of the first rule `cfg` breaks, or None."""
    for rule in CROSS_RULES:
        message = rule.check(cfg)
        if message:
            return rule.keys, message
    return None


# SSIM's Gaussian window (metrics/image.py): a validation frame must hold it after cropping.
SSIM_WINDOW = 11
# Block side of the built-in niqe_local fit (metrics/perceptual/niqe_local.py LOCAL_BLOCK; a
# test checks they agree): a scored frame must hold one block.
NIQE_LOCAL_BLOCK = 32
# HR pixels per latent cell of each preset whose latent is not the LR grid (tiny: data.scale).
PRESET_LATENT_FACTOR = {"sd21": 8}


@cross_rule("data.hr_size", "data.scale")
def hr_size_divisible_by_scale(cfg):
    d = cfg.data
    if d.hr_size % d.scale:
        return (f"key 'data.hr_size' must be a multiple of data.scale ({d.scale}), so the LR crop is whole "
                f"pixels; got {d.hr_size}")


@cross_rule("data.degrade_size", "data.hr_size", "data.scale")
def degrade_size_holds_the_crop(cfg):
    d = cfg.data
    if d.degrade_size is not None and (d.degrade_size < d.hr_size or d.degrade_size % d.scale):
        return (f"key 'data.degrade_size' must be at least data.hr_size ({d.hr_size}) and a multiple of data.scale "
                f"({d.scale}): the training crop is cut from the degraded window; got {d.degrade_size}")


@cross_rule("data.val_hr_size", "data.scale", "data.source")
def val_hr_size_divisible_by_scale(cfg):
    d = cfg.data
    if d.source == "synthetic" and d.val_hr_size % d.scale:
        return (f"key 'data.val_hr_size' must be a multiple of data.scale ({d.scale}), so the LR frames of "
                f"the data.source=synthetic clips are whole pixels; got {d.val_hr_size}")


@cross_rule("data.batch_size", "data.train_clips", "data.source")
def batch_fits_the_clips(cfg):
    d = cfg.data
    if d.source == "synthetic" and d.batch_size > d.train_clips:
        return (f"key 'data.batch_size' ({d.batch_size}) must not exceed data.train_clips ({d.train_clips}) "
                "of data.source=synthetic: incomplete batches are dropped, so training would see none")


@cross_rule("data.num_frames", "loss.temporal.enabled")
def temporal_loss_needs_two_frames(cfg):
    if cfg.loss.temporal.enabled and cfg.data.num_frames < 2:
        return (f"key 'data.num_frames' must be >= 2 while loss.temporal.enabled is true (the temporal loss "
                f"compares consecutive frames); got {cfg.data.num_frames}")


@cross_rule("data.val_frames", "data.source")
def temporal_metrics_need_two_frames(cfg):
    d = cfg.data
    if d.val_frames == 1 or (d.val_frames == 0 and d.source != "folder"):
        return (f"key 'data.val_frames' must be >= 2 (E*warp, tOF and flicker compare consecutive frames; "
                f"0 = every frame, with data.source=folder only); got {d.val_frames}")


@cross_rule("metrics.crop_border", "data.val_hr_size", "data.source")
def scored_frames_hold_the_ssim_window(cfg):
    d, border = cfg.data, cfg.metrics.crop_border
    if d.source == "synthetic" and d.val_hr_size - 2 * border < SSIM_WINDOW:
        return (f"key 'metrics.crop_border' ({border}) leaves {d.val_hr_size - 2 * border} px of the "
                f"{d.val_hr_size}-px validation frames (data.val_hr_size, data.source=synthetic); "
                f"SSIM needs {SSIM_WINDOW}")


def _critic_too_deep(cfg, space: str, side: int, made: str) -> str | None:
    # Each critic layer after the first halves the side (4x4 conv, stride 2): it needs >= 2 px,
    # so side >= 2^(layers - 1), compared by bit length (2 ** a huge typo would fill the memory).
    layers = cfg.discriminator[space].num_layers
    if cfg.loss[f"adversarial_{space}"].enabled and side.bit_length() <= layers - 1:
        need = 2 ** (layers - 1) if layers <= 64 else f"2^{layers - 1}"
        return (f"key 'discriminator.{space}.num_layers' ({layers}) halves the input of the {space} critic "
                f"(loss.adversarial_{space}.enabled) {layers - 1} times, which needs >= {need} px; "
                f"{made} gives {side} px")


@cross_rule("discriminator.latent.num_layers", "data.hr_size", "data.scale", "model.backbone.preset",
            "loss.adversarial_latent.enabled")
def latent_critic_fits_the_crop(cfg):
    d, preset = cfg.data, cfg.model.backbone.preset
    factor = PRESET_LATENT_FACTOR.get(preset, d.scale)  # the tiny preset's latent is the LR grid
    return _critic_too_deep(cfg, "latent", d.hr_size // factor,
                            f"data.hr_size={d.hr_size} / {factor} (data.scale={d.scale}, model.backbone.preset={preset})")


@cross_rule("discriminator.pixel.num_layers", "data.hr_size", "loss.adversarial_pixel.enabled")
def pixel_critic_fits_the_crop(cfg):
    return _critic_too_deep(cfg, "pixel", cfg.data.hr_size, f"data.hr_size={cfg.data.hr_size}")


@cross_rule("model.backbone.attention_head_dim", "model.backbone.block_out_channels", "model.backbone.preset")
def attention_heads_fit_the_channels(cfg):
    b = cfg.model.backbone
    # diffusers reads attention_head_dim as the number of heads of each cross-attention block
    # (all but the deepest); more heads than channels leaves heads of zero width.
    widths = list(b.block_out_channels)[:-1]
    if b.preset == "tiny" and widths and b.attention_head_dim > min(widths):
        return (f"key 'model.backbone.attention_head_dim' ({b.attention_head_dim}) is the number of attention "
                f"heads of the tiny model.backbone.preset and must not exceed the narrowest attention block "
                f"({min(widths)} channels of model.backbone.block_out_channels)")


@cross_rule("trainer.max_batches", "trainer.val_every")
def validation_divides_training(cfg):
    t = cfg.trainer
    every = min(t.val_every, t.max_batches)  # val_every beyond the run: one validation at the end
    if t.max_batches % every:
        return (f"key 'trainer.max_batches' ({t.max_batches}) must be a multiple of trainer.val_every "
                f"({t.val_every}): training runs in epochs of val_every batches")


@cross_rule("sweep.grace_period", "sweep.heartbeat_interval")
def grace_outlasts_heartbeat(cfg):
    s = cfg.sweep
    if s.grace_period <= s.heartbeat_interval:
        return (f"key 'sweep.grace_period' ({s.grace_period} s) must exceed sweep.heartbeat_interval "
                f"({s.heartbeat_interval} s), or live trials are failed as dead")


@cross_rule("metrics.perceptual", "data.val_hr_size", "data.source", "metrics.pretrained")
def niqe_local_fits_the_frames(cfg):
    d, m = cfg.data, cfg.metrics
    builtin = "niqe_local" in list(m.perceptual) and "niqe_local" not in m.pretrained
    if builtin and d.source == "synthetic" and d.val_hr_size < NIQE_LOCAL_BLOCK:
        return (f"key 'metrics.perceptual' lists niqe_local, whose built-in fit (no metrics.pretrained entry) "
                f"scores {NIQE_LOCAL_BLOCK}-px blocks, but data.val_hr_size is {d.val_hr_size} "
                f"(data.source=synthetic): raise it or drop niqe_local")


@cross_rule("data.train_photos", "data.source")
def synthetic_training_has_photos(cfg):
    if cfg.data.source == "synthetic" and not list(cfg.data.train_photos):
        return "key 'data.train_photos' is empty, but data.source=synthetic cuts its training clips from those photos"
