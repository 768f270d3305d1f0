"""`merge-lora --ckpt C --out DIR`: fold a LoRA checkpoint into plain weights.

A LoRA checkpoint holds only adapters and the modules trained in full, plus a reference to the
pretrained folder. The export folds the adapters into the base weights and writes the folder
layout `model.backbone.pretrained_path` reads, which is a plain diffusers one:

    DIR/unet/                          config.json + diffusion_pytorch_model.safetensors
    DIR/vae/                           config.json + diffusion_pytorch_model.safetensors
    DIR/prompt_embedding.safetensors   the empty prompt's context
    DIR/recurrent_branch.safetensors   the trained recurrent branch (when recurrent)
    DIR/config.yaml                    the run's config with pretrained_path=DIR and LoRA off

so `UNet2DConditionModel.from_pretrained(DIR / "unet")` loads the merged UNet, and
`validate --config DIR/config.yaml` (or a new fine-tune) runs the same generator without adapters.
Pruning stages other than `text_encoder` change the architecture away from a diffusers one, so a
checkpoint pruned by them is refused.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import torch
from diffusers import AutoencoderKL
from omegaconf import OmegaConf

from vsr_lab.config.loading import to_yaml
from vsr_lab.errors import UserError
from vsr_lab.models.backbone.sd21 import (PROMPT_EMBEDDING_FILE, RECURRENT_BRANCH_FILE, TextConditionedUNet,
                                          save_prompt_embedding, vae_config)
from vsr_lab.models.lora import has_lora, merge_lora
from vsr_lab.training.module import VSRModule
from vsr_lab.training.runner import read_checkpoint_meta

EXPORTABLE_STAGES = ("text_encoder",)


def load_lora_module(ckpt: str) -> VSRModule:
    """The LightningModule of a LoRA checkpoint, base weights read from its pretrained folder."""
    meta = read_checkpoint_meta(ckpt)
    cfg = OmegaConf.create(meta["config"])
    if not cfg.model.backbone.lora.enabled:
        raise UserError(f"{ckpt}: not a LoRA checkpoint (model.backbone.lora.enabled is false); "
                        "its weights are already plain")
    other = [s for s in cfg.model.pruning.stages if s not in EXPORTABLE_STAGES]
    if other:
        raise UserError(f"{ckpt}: pruned by {', '.join(other)}, which a diffusers UNet/VAE folder cannot "
                        "hold; merge-lora exports unpruned (or text_encoder-only) models")
    module = VSRModule(meta["config"])
    checkpoint = torch.load(ckpt, map_location="cpu", weights_only=True)
    module.on_load_checkpoint(checkpoint)
    module.load_state_dict(checkpoint["state_dict"])
    return module.eval()


def write_export(module: VSRModule, folder: Path) -> None:
    """Merge the adapters of `module`'s generator (in place) and write the export into `folder`."""
    b = module.cfg.model.backbone
    gen = merge_lora(module.generator)
    assert not has_lora(gen)
    gen.backbone.unet.save_pretrained(folder / "unet")
    vae = AutoencoderKL(**vae_config(b.sd21_vae))
    vae.encoder, vae.quant_conv = gen.encoder.vae_encoder.encoder, gen.encoder.vae_encoder.quant_conv
    vae.decoder, vae.post_quant_conv = gen.decoder.decoder, gen.decoder.post_quant_conv
    vae.save_pretrained(folder / "vae")
    with torch.no_grad():
        context = gen.backbone.prompt() if isinstance(gen.backbone, TextConditionedUNet) else gen.backbone.context
    save_prompt_embedding(folder / PROMPT_EMBEDDING_FILE, context)
    if gen.encoder.recurrent is not None:
        from safetensors.torch import save_file

        state = {k: v.detach().contiguous() for k, v in gen.encoder.recurrent.state_dict().items()}
        save_file(state, str(folder / RECURRENT_BRANCH_FILE))


def merge_lora_checkpoint(ckpt: str, out: str) -> Path:
    """Write the merged export of `ckpt` to `out` (a new folder; written whole under a temporary name)."""
    target = Path(out).resolve()
    if target.exists():
        raise UserError(f"--out: {target} exists; give a new folder")
    module = load_lora_module(ckpt)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        write_export(module, tmp)
        cfg = OmegaConf.create(module.hparams["config"])
        b = cfg.model.backbone
        b.pretrained_path = str(target)
        b.lora.enabled, b.text_encoder, b.prompt_embedding = False, False, None
        (tmp / "config.yaml").write_text(to_yaml(cfg))
        tmp.rename(target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target
