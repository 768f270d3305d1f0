"""`data.source: reds`: the REDS layout, with the REDS4 clips (000, 011, 015, 020) held out.

`data.root` is a folder of REDS clips (`train_sharp`, or train_sharp and val_sharp merged as
BasicVSR does), each a sub-folder of frames `00000000.png` ...; `data.lr_root` the matching LR
tree (`train_sharp_bicubic/X4`), or the LR is made by `data.degradation`. The clips named in
`data.reds_val_clips` are the validation split and never train; `test` reads `data.test_root`.
"""

from __future__ import annotations

from vsr_lab.data.folder_dataset import FolderClipDataset, build_folder, folder_options
from vsr_lab.errors import UserError
from vsr_lab.media.paths import find_clips
from vsr_lab.registry import DATA_SOURCES

REDS4 = ("000", "011", "015", "020")


@DATA_SOURCES.register("reds")
def build_reds(cfg, split: str, degradation) -> FolderClipDataset:
    d = cfg.data
    if split == "test":
        return build_folder(cfg, split, degradation)
    if not d.root:
        raise UserError("config: data.source is 'reds' but data.root (a folder of REDS clips) is not set")
    clips = find_clips(d.root)
    held_out = list(d.reds_val_clips)
    missing = [n for n in held_out if n not in clips]
    if missing:
        hint = " (quote clip names in YAML: '011', else it reads the number 9)" if any(n.isdigit() for n in missing) else ""
        raise UserError(f"config: key 'data.reds_val_clips': no clip {', '.join(missing)} in {d.root}{hint}")
    chosen = {n: p for n, p in clips.items() if (n in held_out) == (split == "val")}
    if not chosen:
        raise UserError(f"config: data.root {d.root} holds no clip for the {split} split "
                        f"(data.reds_val_clips: {', '.join(held_out)})")
    lr_clips = find_clips(d.lr_root) if d.lr_root else None
    if lr_clips is not None:
        lr_clips = {n: lr_clips[n] for n in chosen if n in lr_clips}
        if len(lr_clips) < len(chosen):
            missing = [n for n in chosen if n not in lr_clips]
            raise UserError(f"no LR clip in {d.lr_root} for GT clip(s) {', '.join(missing[:5])}")
    return FolderClipDataset(None, clips=chosen, lr_clips=lr_clips, degradation=degradation,
                             **folder_options(cfg, split == "train"))
