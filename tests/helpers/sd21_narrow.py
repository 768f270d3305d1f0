"""An SD 2.1-shaped but narrow sd21 preset: the same block structure (4 UNet levels with
cross-attention in the first three, attention heads, 2 layers per block, a 4-level VAE and a CLIP
text encoder) with tiny widths, so tests run in seconds."""

from __future__ import annotations

from vsr_lab.config import load_config

NARROW = [
    "model.backbone.preset=sd21", "model.backbone.timestep=999",
    "model.backbone.sd21_unet.block_out_channels=[32,32,64,64]",
    "model.backbone.sd21_unet.attention_head_dim=[2,2,4,4]",
    "model.backbone.sd21_unet.cross_attention_dim=32", "model.backbone.sd21_unet.norm_num_groups=8",
    "model.backbone.sd21_vae.block_out_channels=[32,32,64,64]", "model.backbone.sd21_vae.norm_num_groups=8",
    "model.backbone.sd21_text_encoder.hidden_size=32", "model.backbone.sd21_text_encoder.intermediate_size=64",
    "model.backbone.sd21_text_encoder.num_hidden_layers=2",
    "model.backbone.sd21_text_encoder.num_attention_heads=2",
    "model.backbone.encoder_channels=16", "model.backbone.encoder_blocks=1",
]
ALL_STAGES = ["text_encoder", "time_embedding", "cross_attention", "vae_encoder", "unet_channels",
              "decoder_channels"]


def narrow_cfg(*overrides: str, stages: list[str] | None = None, text_encoder: bool = True):
    extra = [f"model.backbone.text_encoder={str(text_encoder).lower()}"]
    if stages is not None:
        extra.append(f"model.pruning.stages=[{','.join(stages)}]")
    return load_config(None, NARROW + extra + list(overrides))
