"""LPIPS from local files only, for tLP.

torchmetrics ships LPIPS's calibrated linear layers inside its wheel; only the ImageNet backbone
(torchvision AlexNet or VGG16) would be downloaded. Here the backbone is built without weights and
filled from a local torchvision state-dict file (`metrics.lpips_weights`, e.g.
`alexnet-owt-7be5be79.pth` or `vgg16-397923af.pth` from a torch hub cache; only the
`features.*` tensors are read). No path: LPIPS is unavailable, and tLP is skipped with a warning.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from torchmetrics.functional.image.lpips import _LPIPS

from vsr_lab.errors import UserError

log = logging.getLogger(__name__)

NETS = ("alex", "vgg")


def load_lpips(weights: str | None, net: str = "alex", key: str = "metrics.lpips_weights") -> torch.nn.Module | None:
    """LPIPS in eval mode with its backbone read from `weights`; None (and a warning) without a path.

    A path that does not exist or does not hold the backbone's `features.*` tensors is a UserError
    naming `key`.
    """
    if net not in NETS:
        raise UserError(f"LPIPS net must be one of {', '.join(NETS)}; got {net!r}")
    if not weights:
        log.warning("tLP skipped: no LPIPS backbone weights (set %s to a local torchvision %s "
                    "state dict)", key, "alexnet" if net == "alex" else "vgg16")
        return None
    path = Path(weights).expanduser()
    if not path.is_file():
        raise UserError(f"{key}: file not found: {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # not a torch file, or one that needs unpickling code
        raise UserError(f"{key}: {path} is not a readable state dict ({exc.__class__.__name__})") from None
    model = _LPIPS(pretrained=True, net=net, pnet_rand=True)  # linear layers from the torchmetrics wheel
    for stage in model.net.children():  # slices hold torchvision's `features[i]` under the name "i"
        for index, layer in stage.named_children():
            wanted = {name: state.get(f"features.{index}.{name}") for name in layer.state_dict()}
            missing = [f"features.{index}.{n}" for n, v in wanted.items() if v is None]
            if missing:
                raise UserError(f"{key}: {path} is not a torchvision {net} backbone (no {missing[0]})")
            try:
                layer.load_state_dict(wanted)
            except RuntimeError as exc:
                raise UserError(f"{key}: {path} does not fit the {net} backbone "
                                f"({str(exc).splitlines()[-1].strip()[:160]})") from None
    return model.eval().requires_grad_(False)
