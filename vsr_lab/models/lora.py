"""LoRA fine-tuning of the sd21 preset's pretrained parts, through diffusers' PEFT integration.

OSEDiff fine-tunes SD 2.1 with low-rank adapters instead of full weights: the optimizer then
holds states for a few percent of the parameters and checkpoints only the adapters. Here every
part read from `model.backbone.pretrained_path` is frozen (UNet, VAE encoder and decoder, text
encoder, the latent critic's reference encoder); `lora.parts` get PEFT adapters on the layers
named by `lora.target_modules`; modules that are not in the pretrained folder (recurrent branch,
light encoder of the `vae_encoder` stage) keep training in full.

The UNet is a diffusers model and takes its adapter with `add_adapter`; the VAE halves are plain
`nn.Module`s held apart from their `AutoencoderKL`, so they take it with PEFT's
`inject_adapter_in_model`, the call `add_adapter` makes inside.
"""

from __future__ import annotations

from omegaconf import DictConfig
from torch import nn

from vsr_lab.errors import UserError
from vsr_lab.models.backbone.sd21 import SD21Decoder, SD21Encoder, TextConditionedUNet, VAELatentEncoder
from vsr_lab.models.generator import OneStepVSRGenerator


def pretrained_parts(generator: OneStepVSRGenerator) -> dict[str, nn.Module]:
    """The sd21 generator's modules whose weights come from the pretrained folder, by part name."""
    parts: dict[str, nn.Module] = {"unet": generator.backbone.unet}
    if isinstance(generator.encoder, SD21Encoder) and isinstance(generator.encoder.vae_encoder, VAELatentEncoder):
        parts["vae_encoder"] = generator.encoder.vae_encoder
    if isinstance(generator.decoder, SD21Decoder):
        parts["vae_decoder"] = generator.decoder
    if isinstance(generator.backbone, TextConditionedUNet):
        parts["text_encoder"] = generator.backbone.prompt
    if isinstance(generator._reference_encoder, nn.Module):
        parts["reference"] = generator._reference_encoder
    return parts


def add_lora(generator: OneStepVSRGenerator, cfg: DictConfig) -> dict[str, int]:
    """Freeze the pretrained parts and give `cfg.model.backbone.lora.parts` adapters (in place).

    Parts a config lists but the model lacks (the VAE encoder after the `vae_encoder` stage) are
    skipped; returns the number of adapted layers per part.
    """
    from peft import LoraConfig, inject_adapter_in_model
    from peft.tuners.tuners_utils import BaseTunerLayer

    lcfg = cfg.model.backbone.lora
    if cfg.model.backbone.preset != "sd21":
        raise UserError("config: key 'model.backbone.lora' needs model.backbone.preset=sd21 (LoRA adapts "
                        f"pretrained SD 2.1 weights); got preset {cfg.model.backbone.preset!r}")
    if lcfg.rank < 1:
        raise UserError(f"config: key 'model.backbone.lora.rank' must be >= 1; got {lcfg.rank}")
    parts = pretrained_parts(generator)
    for module in parts.values():
        module.requires_grad_(False)
    adapted: dict[str, int] = {}
    for name in lcfg.parts:
        if name not in parts:
            continue
        config = LoraConfig(r=int(lcfg.rank), lora_alpha=float(lcfg.alpha), target_modules=list(lcfg.target_modules),
                            init_lora_weights=True)  # B = 0: the adapted model starts as the base model
        try:
            if name == "unet":
                parts[name].add_adapter(config)
            else:
                inject_adapter_in_model(config, parts[name])
        except ValueError as exc:  # PEFT: no target module matched in this part
            raise UserError(f"config: key 'model.backbone.lora.target_modules': no layer of the {name} matches "
                            f"{list(lcfg.target_modules)} ({str(exc).splitlines()[0]})") from None
        adapted[name] = sum(isinstance(m, BaseTunerLayer) for m in parts[name].modules())
    if not adapted:
        raise UserError(f"config: key 'model.backbone.lora.parts': none of {list(lcfg.parts)} is in this model "
                        f"(it has {', '.join(p for p in parts if p not in ('reference', 'text_encoder'))})")
    return adapted


def has_lora(module: nn.Module) -> bool:
    from peft.tuners.tuners_utils import BaseTunerLayer

    return any(isinstance(m, BaseTunerLayer) for m in module.modules())


def merge_lora(module: nn.Module) -> nn.Module:
    """Fold every adapter into its base layer and put the plain layer back (in place)."""
    from peft.tuners.tuners_utils import BaseTunerLayer

    wrapped = [(name, m) for name, m in module.named_modules() if isinstance(m, BaseTunerLayer)]
    for name, layer in wrapped:
        layer.merge(safe_merge=True)  # raises on a non-finite merged weight
        parent_name, _, child = name.rpartition(".")
        parent = module.get_submodule(parent_name) if parent_name else module
        setattr(parent, child, layer.get_base_layer())
    # diffusers marks a model that holds adapters; it holds none any more
    for m in module.modules():
        if getattr(m, "_hf_peft_config_loaded", False):
            m._hf_peft_config_loaded = False
            m.peft_config = {}
    return module
