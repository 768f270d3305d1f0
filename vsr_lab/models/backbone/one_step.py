"""One denoising step at a fixed timestep, with x0 taken from the noise schedule.

OSEDiff-style one-step SR treats the encoded LR latent as the noisy latent z_t at a fixed t and
recovers x0 from a single UNet call. x0 is computed from `alphas_cumprod` directly rather than
through `scheduler.step`, whose timestep spacing rules (e.g. SD's "leading" spacing with
`set_timesteps(1)`) do not give t = 999 on current diffusers.
"""

from __future__ import annotations

import torch
from diffusers import DDPMScheduler
from torch import nn


def sd_alphas_cumprod(num_train_timesteps: int = 1000) -> torch.Tensor:
    """Stable Diffusion's scaled-linear schedule (beta 0.00085 -> 0.012)."""
    sched = DDPMScheduler(num_train_timesteps=num_train_timesteps, beta_schedule="scaled_linear",
                          beta_start=0.00085, beta_end=0.012)
    return sched.alphas_cumprod.clone()


def predict_x0(z_t: torch.Tensor, model_output: torch.Tensor, alpha_bar: torch.Tensor,
               prediction_type: str) -> torch.Tensor:
    """x0 from the UNet output: epsilon- or v-prediction."""
    a = alpha_bar.to(z_t.dtype)
    if prediction_type == "epsilon":
        return (z_t - (1 - a).sqrt() * model_output) / a.sqrt()
    if prediction_type == "v_prediction":
        return a.sqrt() * z_t - (1 - a).sqrt() * model_output
    raise ValueError(f"unknown prediction_type {prediction_type!r}")


class OneStepUNet(nn.Module):
    """A diffusers UNet called once at `timestep` with a constant context; returns x0.

    `context` is the cached embedding of the empty prompt (a buffer: it is not trained). With
    `context=None` the UNet is called without `encoder_hidden_states` (cross-attention removed).
    """

    def __init__(self, unet: nn.Module, context: torch.Tensor | None, timestep: int,
                 prediction_type: str = "epsilon", alphas_cumprod: torch.Tensor | None = None):
        super().__init__()
        self.unet = unet
        self.timestep = int(timestep)
        self.prediction_type = prediction_type
        alphas = sd_alphas_cumprod() if alphas_cumprod is None else alphas_cumprod
        if not 0 <= self.timestep < len(alphas):
            raise ValueError(f"timestep {timestep} outside the schedule's 0..{len(alphas) - 1}")
        self.register_buffer("alpha_bar", alphas[self.timestep].reshape(()).float(), persistent=False)
        if context is not None:
            self.register_buffer("context", context)
        else:
            self.context = None

    def forward(self, z_t: torch.Tensor) -> torch.Tensor:
        context = None  # UNet2DConditionModel needs the argument even without cross-attention
        if self.context is not None:
            context = self.context.expand(z_t.shape[0], -1, -1).to(z_t.dtype)
        t = torch.full((z_t.shape[0],), self.timestep, device=z_t.device, dtype=torch.long)
        out = self.unet(z_t, t, encoder_hidden_states=context).sample
        return predict_x0(z_t, out, self.alpha_bar, self.prediction_type)
