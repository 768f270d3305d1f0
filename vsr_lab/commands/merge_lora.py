"""`merge-lora`: fold a LoRA checkpoint into a plain diffusers folder (vsr_lab.training.lora_merge)."""

from __future__ import annotations

from vsr_lab.commands.common import existing


def add_parser(sub) -> None:
    p = sub.add_parser("merge-lora", help="fold a LoRA checkpoint into a plain diffusers folder")
    p.add_argument("--ckpt", required=True, help="checkpoint of a fit with model.backbone.lora.enabled=true")
    p.add_argument("--out", required=True, help="new folder for the merged model")
    p.set_defaults(func=run)


def run(args) -> int:
    existing(args.ckpt, "checkpoint")
    from vsr_lab.training.lora_merge import PROMPT_EMBEDDING_FILE, merge_lora_checkpoint  # torch, diffusers

    target = merge_lora_checkpoint(args.ckpt, args.out)
    print(f"wrote {target} (unet/, vae/, {PROMPT_EMBEDDING_FILE}, config.yaml); "
          f"use it with --config {target / 'config.yaml'} or model.backbone.pretrained_path={target}")
    return 0
