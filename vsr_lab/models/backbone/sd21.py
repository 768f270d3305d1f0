"""The `sd21` preset: the Stable Diffusion 2.1-base UNet and VAE as a one-step VSR generator.

OSEDiff-style: bicubic x`scale` -> VAE encoder -> latent mean * 0.18215 is taken as z_t at the
fixed timestep, one UNet call with the empty-prompt context gives x0, and the VAE decoder maps
x0 / 0.18215 back to pixels. The architectures come from the diffusers configs below (nothing is
downloaded); weights come from `model.backbone.pretrained_path`, a local folder in diffusers
layout (unet/, vae/, optionally text_encoder/ + tokenizer/ or a saved prompt embedding), and are
random otherwise; a folder written by `merge-lora` also holds the trained recurrent branch
(`recurrent_branch.safetensors`). The `sd21_unet` / `sd21_vae` / `sd21_text_encoder` config keys override single
entries of these configs (tests use SD-shaped but narrow widths).
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from diffusers import AutoencoderKL, UNet2DConditionModel
from omegaconf import DictConfig, OmegaConf
from torch import nn

from vsr_lab.errors import UserError
from vsr_lab.models.backbone.one_step import OneStepUNet, predict_x0, sd_alphas_cumprod
from vsr_lab.models.generator import OneStepVSRGenerator
from vsr_lab.models.state_fit import misfit
from vsr_lab.registry import GENERATOR_PRESETS

SCALING_FACTOR = 0.18215  # SD 1.x/2.x VAE latent scaling
VAE_FACTOR = 8            # latent = image / 8 per side
CONTEXT_TOKENS = 77

# stabilityai/stable-diffusion-2-1-base, unet/config.json (architecture entries)
SD21_UNET_CONFIG: dict[str, Any] = {
    "sample_size": 64, "in_channels": 4, "out_channels": 4, "center_input_sample": False,
    "flip_sin_to_cos": True, "freq_shift": 0,
    "down_block_types": ["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"],
    "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"],
    "block_out_channels": [320, 640, 1280, 1280], "layers_per_block": 2, "downsample_padding": 1,
    "mid_block_scale_factor": 1, "act_fn": "silu", "norm_num_groups": 32, "norm_eps": 1e-5,
    "cross_attention_dim": 1024, "attention_head_dim": [5, 10, 20, 20], "use_linear_projection": True,
    "dual_cross_attention": False, "only_cross_attention": False, "upcast_attention": False,
}

# stabilityai/stable-diffusion-2-1-base, vae/config.json
SD21_VAE_CONFIG: dict[str, Any] = {
    "in_channels": 3, "out_channels": 3, "latent_channels": 4,
    "down_block_types": ["DownEncoderBlock2D"] * 4, "up_block_types": ["UpDecoderBlock2D"] * 4,
    "block_out_channels": [128, 256, 512, 512], "layers_per_block": 2, "act_fn": "silu",
    "norm_num_groups": 32, "sample_size": 512, "scaling_factor": SCALING_FACTOR,
}

# stabilityai/stable-diffusion-2-1-base, text_encoder/config.json (OpenCLIP ViT-H/14 text tower, 23 layers)
SD21_TEXT_ENCODER_CONFIG: dict[str, Any] = {
    "vocab_size": 49408, "hidden_size": 1024, "intermediate_size": 4096, "projection_dim": 512,
    "num_hidden_layers": 23, "num_attention_heads": 16, "max_position_embeddings": CONTEXT_TOKENS,
    "hidden_act": "gelu", "layer_norm_eps": 1e-5,
}

# The empty prompt as SD 2.x's tokenizer writes it: <start>, <end>, then "!" (id 0) padding.
EMPTY_PROMPT_IDS = [49406, 49407] + [0] * (CONTEXT_TOKENS - 2)
PROMPT_EMBEDDING_FILE = "prompt_embedding.safetensors"
PROMPT_EMBEDDING_KEY = "prompt_embedding"
RECURRENT_BRANCH_FILE = "recurrent_branch.safetensors"  # vsr_lab's own part of an exported folder
WEIGHT_FILES = ("diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.fp16.safetensors",
                "diffusion_pytorch_model.bin")


def _merged(base: dict, overrides: Any) -> dict:
    out = copy.deepcopy(base)
    out.update(OmegaConf.to_container(overrides) if isinstance(overrides, DictConfig) else dict(overrides or {}))
    return out


def unet_config(overrides: Any = None) -> dict:
    return _merged(SD21_UNET_CONFIG, overrides)


def vae_config(overrides: Any = None) -> dict:
    return _merged(SD21_VAE_CONFIG, overrides)


def text_encoder_config(overrides: Any = None) -> dict:
    return _merged(SD21_TEXT_ENCODER_CONFIG, overrides)


# ---------------------------------------------------------------------------------- loading

def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """safetensors or a torch file read with weights_only=True; errors name the file."""
    if not path.is_file():
        raise UserError(f"missing weights file: {path}")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            return load_file(str(path))
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # corrupt or foreign file: one line naming it
        raise UserError(f"{path}: cannot read weights ({exc.__class__.__name__}: {str(exc).splitlines()[0]})") from None


def _weights_file(folder: Path) -> Path:
    for name in WEIGHT_FILES:
        if (folder / name).is_file():
            return folder / name
    raise UserError(f"missing weights file: {folder / WEIGHT_FILES[0]} (or {', '.join(WEIGHT_FILES[1:])})")


def load_weights(module: nn.Module, folder: Path) -> None:
    """Load `folder`'s diffusers weights into `module` (built from our config); mismatches name the file."""
    path = _weights_file(folder)
    state = read_state_dict(path)
    own = module.state_dict()
    problem = misfit(own, state)
    if problem:
        raise UserError(f"{path}: weights do not fit the configured SD 2.1 architecture: {problem}"
                        " (check model.backbone.sd21_unet / sd21_vae against the folder's config.json)")
    module.load_state_dict({k: v.to(own[k].dtype) for k, v in state.items()})


def load_prompt_embedding(path: Path) -> torch.Tensor:
    """The empty-prompt context (1, tokens, dim) from a safetensors or torch file."""
    state = read_state_dict(path)
    if isinstance(state, torch.Tensor):
        emb = state
    elif isinstance(state, dict) and PROMPT_EMBEDDING_KEY in state:
        emb = state[PROMPT_EMBEDDING_KEY]
    else:
        raise UserError(f"{path}: expected a tensor or a '{PROMPT_EMBEDDING_KEY}' entry")
    if emb.dim() == 2:
        emb = emb[None]
    if emb.dim() != 3 or emb.shape[0] != 1:
        raise UserError(f"{path}: prompt embedding must be (1, tokens, dim); got {tuple(emb.shape)}")
    return emb.float()


def save_prompt_embedding(path: str | Path, embedding: torch.Tensor) -> None:
    """Write the context a text encoder gave for the empty prompt (so run time needs no text encoder)."""
    from safetensors.torch import save_file

    save_file({PROMPT_EMBEDDING_KEY: embedding.detach().float().contiguous().cpu()}, str(path))


# ---------------------------------------------------------------------------------- modules

class PromptContext(nn.Module):
    """Runs the text encoder on the empty prompt's token ids: the unpruned pipeline's context."""

    def __init__(self, text_encoder: nn.Module, token_ids: torch.Tensor):
        super().__init__()
        self.text_encoder = text_encoder
        self.register_buffer("token_ids", token_ids.long().reshape(1, -1), persistent=False)

    def forward(self) -> torch.Tensor:
        return self.text_encoder(input_ids=self.token_ids).last_hidden_state


class TextConditionedUNet(OneStepUNet):
    """OneStepUNet whose context is computed by a text encoder at every call (nothing cached)."""

    def __init__(self, unet: nn.Module, prompt: PromptContext, timestep: int, prediction_type: str,
                 alphas_cumprod: torch.Tensor):
        super().__init__(unet, None, timestep, prediction_type, alphas_cumprod)
        self.prompt = prompt

    def forward(self, z_t: torch.Tensor) -> torch.Tensor:
        context = self.prompt().to(z_t.dtype).expand(z_t.shape[0], -1, -1)
        t = torch.full((z_t.shape[0],), self.timestep, device=z_t.device, dtype=torch.long)
        out = self.unet(z_t, t, encoder_hidden_states=context).sample
        return predict_x0(z_t, out, self.alpha_bar, self.prediction_type)


class VAELatentEncoder(nn.Module):
    """A VAE encoder (+ quant_conv) giving the scaled latent mean of an image in [0, 1]."""

    def __init__(self, encoder: nn.Module, quant_conv: nn.Module | None):
        super().__init__()
        self.encoder = encoder
        self.quant_conv = quant_conv

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        h = self.encoder(img * 2 - 1)
        if self.quant_conv is not None:
            h = self.quant_conv(h)
        return h.chunk(2, dim=1)[0] * SCALING_FACTOR


class RecurrentBranch(nn.Module):
    """Warped previous HR output -> latent correction; zero-initialised so it starts as a no-op."""

    def __init__(self, latent_channels: int, hidden: int):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(3 * VAE_FACTOR ** 2, hidden, 3, padding=1), nn.SiLU(),
                                  nn.Conv2d(hidden, latent_channels, 3, padding=1))
        nn.init.zeros_(self.body[-1].weight)
        nn.init.zeros_(self.body[-1].bias)

    def forward(self, prev_hr: torch.Tensor) -> torch.Tensor:
        return self.body(F.pixel_unshuffle(prev_hr, VAE_FACTOR))


class SD21Encoder(nn.Module):
    """LR (+ warped previous output) -> z_t: bicubic upsampling, the VAE encoder, a recurrent branch."""

    def __init__(self, vae_encoder: VAELatentEncoder, scale: int, recurrent: RecurrentBranch | None):
        super().__init__()
        self.vae_encoder = vae_encoder
        self.scale = scale
        self.recurrent = recurrent

    def forward(self, lr: torch.Tensor, prev_hr: torch.Tensor | None) -> torch.Tensor:
        up = F.interpolate(lr, scale_factor=self.scale, mode="bicubic", align_corners=False)
        z = self.vae_encoder(up)
        if self.recurrent is not None:
            if prev_hr is None:
                raise ValueError("recurrent encoder needs the previous output")
            z = z + self.recurrent(prev_hr)
        return z


class SD21Decoder(nn.Module):
    """x0 latent -> RGB in [0, 1]: post_quant_conv + VAE decoder on latent / scaling factor."""

    def __init__(self, decoder: nn.Module, post_quant_conv: nn.Module | None):
        super().__init__()
        self.decoder = decoder
        self.post_quant_conv = post_quant_conv

    def forward(self, x0: torch.Tensor) -> torch.Tensor:
        z = x0 / SCALING_FACTOR
        if self.post_quant_conv is not None:
            z = self.post_quant_conv(z)
        return (self.decoder(z) + 1) / 2


class FrozenReference(nn.Module):
    """The pretrained VAE encoder, frozen: the latent critic's 'real' latents of GT frames."""

    def __init__(self, encoder: VAELatentEncoder):
        super().__init__()
        self.encoder = encoder.requires_grad_(False)

    def train(self, mode: bool = True) -> FrozenReference:
        return super().train(False)

    @torch.no_grad()
    def forward(self, hr: torch.Tensor) -> torch.Tensor:
        return self.encoder(hr)


# ---------------------------------------------------------------------------------- building

def _text_encoder(folder: Path | None, overrides: Any) -> PromptContext:
    from transformers import CLIPTextConfig, CLIPTextModel

    if folder is None:
        model = CLIPTextModel(CLIPTextConfig(**text_encoder_config(overrides)))
        return PromptContext(model.eval(), torch.tensor(EMPTY_PROMPT_IDS))
    for sub in ("text_encoder", "tokenizer"):
        if not (folder / sub).is_dir():
            raise UserError(f"missing folder: {folder / sub} (or set model.backbone.text_encoder=false "
                            f"and provide {folder / PROMPT_EMBEDDING_FILE})")
    from transformers import CLIPTokenizer

    try:
        model = CLIPTextModel.from_pretrained(folder / "text_encoder", local_files_only=True)
        tok = CLIPTokenizer.from_pretrained(folder / "tokenizer", local_files_only=True)
    except (OSError, ValueError) as exc:
        raise UserError(f"{folder / 'text_encoder'}: cannot load ({str(exc).splitlines()[0]})") from None
    ids = tok("", padding="max_length", max_length=tok.model_max_length, truncation=True,
              return_tensors="pt").input_ids
    return PromptContext(model.eval(), ids)


def _context(b: DictConfig, folder: Path | None, cross_dim: int) -> torch.Tensor:
    """The cached empty-prompt embedding: a file, or (random weights) a fixed seeded tensor."""
    path = Path(b.prompt_embedding) if b.prompt_embedding else (folder / PROMPT_EMBEDDING_FILE if folder else None)
    if path is None:
        return torch.randn(1, CONTEXT_TOKENS, cross_dim, generator=torch.Generator().manual_seed(1234))
    if not path.is_file():
        raise UserError(f"missing prompt embedding file: {path} (set model.backbone.prompt_embedding, or "
                        "model.backbone.text_encoder=true with text_encoder/ and tokenizer/ in the folder)")
    emb = load_prompt_embedding(path)
    if emb.shape[-1] != cross_dim:
        raise UserError(f"{path}: embedding width {emb.shape[-1]} != the UNet's cross_attention_dim {cross_dim}")
    return emb


def build_sd21_modules(b: DictConfig) -> tuple[UNet2DConditionModel, AutoencoderKL]:
    """UNet and VAE from the SD 2.1-base configs (+ overrides), loaded from `pretrained_path` if set;
    with `gradient_checkpointing`, their blocks recompute activations in the backward pass."""
    unet = UNet2DConditionModel(**unet_config(b.sd21_unet))
    vae = AutoencoderKL(**vae_config(b.sd21_vae))
    if b.pretrained_path:
        folder = Path(b.pretrained_path)
        if not folder.is_dir():
            raise UserError(f"model.backbone.pretrained_path: folder not found: {folder}")
        load_weights(unet, folder / "unet")
        load_weights(vae, folder / "vae")
    if b.get("gradient_checkpointing", False):
        unet.enable_gradient_checkpointing()
        vae.enable_gradient_checkpointing()  # encoder and decoder blocks
    return unet, vae


def base_weight_files(b: DictConfig) -> list[Path]:
    """The files of `pretrained_path` that a LoRA checkpoint's frozen weights come from."""
    folder = Path(b.pretrained_path)
    files = [_weights_file(folder / "unet"), _weights_file(folder / "vae")]
    if b.text_encoder:
        files += sorted(p for p in (folder / "text_encoder").glob("*") if p.suffix in (".safetensors", ".bin"))
    return files


def load_recurrent_branch(branch: RecurrentBranch, folder: Path) -> None:
    """A trained recurrent branch saved beside the diffusers parts (by `merge-lora`), if present."""
    path = folder / RECURRENT_BRANCH_FILE
    if not path.is_file():
        return
    state = read_state_dict(path)
    try:
        branch.load_state_dict(state)
    except RuntimeError as exc:
        raise UserError(f"{path}: does not fit the recurrent branch (model.backbone.encoder_channels?): "
                        f"{str(exc).splitlines()[1].strip() if len(str(exc).splitlines()) > 1 else exc}") from None


@GENERATOR_PRESETS.register("sd21")
def build_sd21_generator(cfg: DictConfig) -> OneStepVSRGenerator:
    """The unpruned one-step SD 2.1 generator (pruning stages are applied by the caller)."""
    b = cfg.model.backbone
    scale = cfg.data.scale
    if VAE_FACTOR % scale:
        raise UserError(f"data.scale: the sd21 preset needs a scale that divides {VAE_FACTOR}; got {scale}")
    recurrent = cfg.model.recurrent.enabled
    unet, vae = build_sd21_modules(b)
    folder = Path(b.pretrained_path) if b.pretrained_path else None
    alphas = sd_alphas_cumprod()
    if b.text_encoder:
        backbone = TextConditionedUNet(unet, _text_encoder(folder, b.sd21_text_encoder), b.timestep,
                                       b.prediction_type, alphas)
    else:
        backbone = OneStepUNet(unet, _context(b, folder, unet.config.cross_attention_dim), b.timestep,
                               b.prediction_type, alphas)
    vae_enc = VAELatentEncoder(vae.encoder, vae.quant_conv)
    latent_ch = vae.config.latent_channels
    branch = RecurrentBranch(latent_ch, b.encoder_channels) if recurrent else None
    if branch is not None and folder is not None:
        load_recurrent_branch(branch, folder)
    encoder = SD21Encoder(vae_enc, scale, branch)
    decoder = SD21Decoder(vae.decoder, vae.post_quant_conv)
    reference = FrozenReference(copy.deepcopy(vae_enc))
    return OneStepVSRGenerator(encoder, backbone, decoder, scale, recurrent, cfg.model.recurrent.init_state,
                               reference_encoder=reference, latent_channels=latent_ch,
                               latent_factor=VAE_FACTOR)

