"""Build pyiqa metrics from a local weights folder, with every download path closed.

The weights folder has the layout of a torch hub directory (e.g. a copy of ~/.cache/torch/hub):
`pyiqa/` (pyiqa's own files), `checkpoints/` (torchvision backbones), `clip/` (OpenAI CLIP).
While a metric is built, torch's hub directory and pyiqa's cache directory point at it; the
download functions of torch.hub and pyiqa, socket connections and host look-ups raise instead of
fetching, and the Hugging Face hub (timm's weights) is in offline mode: a file that is not there
becomes one error naming the metric and the file, whatever code path (ours, pyiqa's,
torchvision's, CLIP's, timm's) asked for it.

Why patch module globals: pyiqa fixes its cache folder when it is imported
(`pyiqa.utils.download_util.DEFAULT_CACHE_DIR`) and offers no offline switch; everything is
restored when the `with` block ends.
"""

from __future__ import annotations

import contextlib
import os
import socket
import tempfile
from pathlib import Path
from typing import Iterator
from urllib.parse import urlparse

import torch

from vsr_lab.errors import UserError


class DownloadRefused(RuntimeError):
    """A library tried to fetch a file; `what` is its URL or the address it tried to reach."""

    def __init__(self, what: str):
        super().__init__(what)
        self.what = what


@contextlib.contextmanager
def offline_weights(weights_dir: str | Path | None) -> Iterator[list[str]]:
    """Within the block, weights are read from `weights_dir` only (an empty folder when None) and
    any download raises DownloadRefused. Yields the list of files torch.load read, in order."""
    import pyiqa.utils.download_util as pyiqa_download

    try:
        from huggingface_hub import constants as hf_constants  # timm's weights come through it
    except ImportError:  # pragma: no cover - a dependency of timm and diffusers
        hf_constants = None
    loaded: list[str] = []
    real_load, real_connect, real_getaddrinfo = torch.load, socket.socket.connect, socket.getaddrinfo
    saved = (torch.hub.get_dir(), pyiqa_download.DEFAULT_CACHE_DIR, torch.hub.download_url_to_file,
             pyiqa_download.download_url_to_file, getattr(hf_constants, "HF_HUB_OFFLINE", None))

    def refuse_download(url, *args, **kwargs):
        raise DownloadRefused(url)

    def refuse_connect(sock, address, *args, **kwargs):
        raise DownloadRefused(f"network address {address}")

    def refuse_lookup(host, *args, **kwargs):
        raise DownloadRefused(f"network host {host}")

    def recording_load(f, *args, **kwargs):
        if isinstance(f, (str, os.PathLike)):
            loaded.append(str(f))
        return real_load(f, *args, **kwargs)

    with tempfile.TemporaryDirectory(prefix="vsr_lab_no_weights_") as empty:
        root = str(Path(weights_dir).expanduser()) if weights_dir else empty
        try:
            torch.hub.set_dir(root)
            pyiqa_download.DEFAULT_CACHE_DIR = os.path.join(root, "pyiqa")
            torch.hub.download_url_to_file = refuse_download
            pyiqa_download.download_url_to_file = refuse_download
            socket.socket.connect = refuse_connect
            socket.getaddrinfo = refuse_lookup
            torch.load = recording_load
            if hf_constants is not None:
                hf_constants.HF_HUB_OFFLINE = True
            yield loaded
        finally:
            hub_dir, cache_dir, hub_download, pyiqa_dl, hf_offline = saved
            torch.hub.set_dir(hub_dir)
            pyiqa_download.DEFAULT_CACHE_DIR = cache_dir
            torch.hub.download_url_to_file = hub_download
            pyiqa_download.download_url_to_file = pyiqa_dl
            socket.socket.connect = real_connect
            socket.getaddrinfo = real_getaddrinfo
            torch.load = real_load
            if hf_constants is not None:
                hf_constants.HF_HUB_OFFLINE = hf_offline


def create_pyiqa_metric(name: str, weights_dir: str | None, pretrained: str | None = None,
                        as_loss: bool = False, device: str | torch.device = "cpu", key: str = "metrics.perceptual"):
    """`pyiqa.create_metric(name)` from local files only; one UserError (naming `key`, the
    metric and the file) for a missing file, a file that does not fit, or a download attempt."""
    import pyiqa

    kwargs = {"pretrained_model_path": str(Path(pretrained).expanduser())} if pretrained else {}
    where = f"metrics.weights_dir ({weights_dir})" if weights_dir else "metrics.weights_dir (not set)"
    with offline_weights(weights_dir) as loaded:
        try:
            metric = pyiqa.create_metric(name, as_loss=as_loss, device=torch.device(device), **kwargs)
        except DownloadRefused as exc:
            target = Path(urlparse(exc.what).path).name if "://" in exc.what else exc.what
            raise UserError(f"{key}: {name!r} needs the weight file {target}, which is not in {where}; "
                            "nothing is downloaded") from None
        except (RuntimeError, KeyError, ValueError, TypeError) as exc:  # a file of the wrong shape or kind
            culprit = loaded[-1] if loaded else (pretrained or where)
            detail = " ".join(str(exc).split())[:200]
            raise UserError(f"{key}: {culprit} does not fit {name!r} ({exc.__class__.__name__}: {detail})") from None
        except OSError as exc:  # e.g. timm's weights missing from the Hugging Face cache (offline mode)
            detail = " ".join(str(exc).split())[:200]
            raise UserError(f"{key}: {name!r} needs a weight file that is not available offline "
                            f"({exc.__class__.__name__}: {detail})") from None
    _check_loaded_keys(name, metric.net, loaded, key)
    return metric


def _check_loaded_keys(name: str, net: torch.nn.Module, loaded: list[str], key: str) -> None:
    """pyiqa loads LPIPS and DISTS with strict=False, which would run a metric whose file holds none
    of its tensors on random layers: require every pyiqa file read to fill some of the net."""
    if type(net).__name__ not in ("LPIPS", "DISTS"):
        return
    state = net.state_dict()
    for path in loaded:
        if Path(path).parent.name != "pyiqa" or not path.endswith((".pth", ".pt")):
            continue
        tensors = torch.load(path, map_location="cpu", weights_only=False)
        if isinstance(tensors, dict) and "params" in tensors and isinstance(tensors["params"], dict):
            tensors = tensors["params"]
        names = {k.removeprefix("module.") for k in tensors} if isinstance(tensors, dict) else set()
        if not names & set(state):
            raise UserError(f"{key}: {path} holds none of the tensors of {name!r} (is it the right file?)")
