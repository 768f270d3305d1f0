"""`evaluate`: score output videos or frame folders on disk, against ground truth or without
(the scoring is vsr_lab.evaluation.files)."""

from __future__ import annotations

from vsr_lab.commands.common import existing, writable_file
from vsr_lab.errors import UserError


def add_parser(sub) -> None:
    p = sub.add_parser("evaluate", help="score output frames/videos on disk, against ground truth or without")
    p.add_argument("--pred", required=True, nargs="+",
                   help="output clip (video or frame folder) or folder of clips; several: one table, a row "
                        "per output named by its file stem or folder name")
    p.add_argument("--gt", help="ground-truth clip or folder of clips (same names); without it, "
                                "no-reference scores only")
    p.add_argument("--lr", help="the LR clip or folder of clips the outputs were made from (needs --gt): adds "
                                "a bicubic and a lanczos row, x the scale the GT size implies")
    p.add_argument("--metrics", help="perceptual metrics, comma-separated pyiqa names or niqe_local "
                                     "(default: piqe,niqe_local; '' for none)")
    p.add_argument("--weights-dir", help="local weights folder for the metrics (torch hub layout: pyiqa/, checkpoints/)")
    p.add_argument("--pretrained", nargs="+", metavar="METRIC=PATH",
                   help="a metric's own parameter file, e.g. niqe_local=my_niqe.mat (a niqe-fit output)")
    p.add_argument("--json", help="write per-clip and mean scores to this JSON file")
    p.add_argument("--flow", default="farneback",
                   help="flow estimator for E*warp's motion: farneback (default), dis or raft")
    p.add_argument("--ewarp-on", default="gt", choices=("gt", "pred"),
                   help="estimate E*warp's motion on the GT clip (default: the same for every method, as "
                        "validation) or on the scored clip")
    p.add_argument("--raft-weights", help="local RAFT state dict (for --flow raft)")
    p.add_argument("--raft-size", default="small", choices=("small", "large"))
    p.add_argument("--lpips-weights", help="local torchvision backbone weights for LPIPS (enables tLP)")
    p.add_argument("--lpips-net", default="alex", choices=("alex", "vgg"))
    p.add_argument("--crop-border", type=int, default=0, help="pixels cropped on each side for PSNR/SSIM")
    p.add_argument("--y-channel", action="store_true", help="PSNR/SSIM on BT.601 Y instead of RGB")
    p.set_defaults(func=run)


def run(args) -> int:
    for pred in args.pred:
        existing(pred, "--pred")
    existing(args.gt, "--gt")
    existing(args.lr, "--lr")
    writable_file(args.json, "--json")
    pretrained = {}
    for item in args.pretrained or ():
        name, sep, path = item.partition("=")
        if not sep:
            raise UserError(f"--pretrained: expected METRIC=PATH, got {item!r}")
        pretrained[name] = path
    from vsr_lab.json_output import write_json
    from vsr_lab.evaluation.files import DEFAULT_METRICS, evaluate_folders, evaluate_outputs, format_table

    metrics = [m.strip() for m in args.metrics.split(",")] if args.metrics is not None else DEFAULT_METRICS
    settings = dict(flow=args.flow, raft_weights=args.raft_weights, raft_size=args.raft_size,
                    lpips_weights=args.lpips_weights, lpips_net=args.lpips_net, crop_border=args.crop_border,
                    y_channel=args.y_channel, metrics=metrics, weights_dir=args.weights_dir, pretrained=pretrained,
                    ewarp_on=args.ewarp_on)
    if len(args.pred) == 1 and args.lr is None:  # one output: its per-clip table and JSON, as always
        result = evaluate_folders(args.pred[0], args.gt, **settings)
    else:  # a comparison: a row per output (and per --lr baseline)
        result = evaluate_outputs(args.pred, args.gt, args.lr, **settings)
    if args.gt is None:
        print("no --gt: no-reference scores only (" + ", ".join(result["metrics"]) + ")")
    print(format_table(result))
    if args.json:
        write_json(result, args.json)
        print(f"wrote {args.json}")
    return 0
