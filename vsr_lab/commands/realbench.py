"""`realbench`: does a checkpoint improve the videos users have? Held-out moving-camera clips under
the LR conditions real videos arrive in (H.264 4:2:0 at several qualities, a resizer without
antialiasing, blur + noise + a strong codec), scored beside bicubic and Lanczos of the same decoded
LR frames, and real footage scored without ground truth (vsr_lab.benchmarks.realbench)."""

from __future__ import annotations

from pathlib import Path

from vsr_lab.commands.common import existing, metric_list, writable_file
from vsr_lab.errors import UserError
from vsr_lab.registry import REAL_CONDITIONS

# Debian package opencv-doc: a static camera over a square with walking people, MS-MPEG4, 768 x 576
DEFAULT_FOOTAGE = "/usr/share/doc/opencv-doc/examples/data/vtest.avi"


def add_parser(sub) -> None:
    p = sub.add_parser("realbench", help="does a checkpoint beat bicubic on compressed and real video?",
                       description=__doc__.split("\n\n")[0].replace("\n", " ").replace("`realbench`: ", ""),
                       epilog="With --ckpt of a tracked fit, the scores, the JSON and the table are logged to a "
                              "`realbench` run nested under the fit's MLflow run. docs/realbench.md says what the "
                              "bench covers and what it does not.")
    p.add_argument("--ckpt", help="training checkpoint (its saved config is used when --config is absent)")
    p.add_argument("--config", help="config file: an untrained model (a sanity check: about bicubic), or the "
                                    "model of --ckpt")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides")
    p.add_argument("--conditions", help="comma-separated LR conditions (default: all: "
                                        f"{', '.join(REAL_CONDITIONS.names())})")
    p.add_argument("--photos", metavar="DIR", help="folder of held-out photos to film (default: the built-in "
                                                   "test photos camera, hubble_deep_field, gravel, coins)")
    p.add_argument("--clips", type=int, default=6, help="number of clips; photos repeat, filmed elsewhere, when "
                                                        "there are fewer (default 6)")
    p.add_argument("--frames", type=int, default=16, help="frames per clip (default 16)")
    p.add_argument("--size", default="256x192", help="HR WIDTHxHEIGHT of the clips, multiples of 2 x the "
                                                     "model's scale (default 256x192)")
    p.add_argument("--footage", nargs="+", metavar="FILE", help="real videos to score without ground truth "
                                                                f"(default: {DEFAULT_FOOTAGE} if installed)")
    p.add_argument("--no-footage", action="store_true", help="skip the real footage")
    p.add_argument("--footage-frames", type=int, default=16, help="first frames of each footage file (default 16)")
    p.add_argument("--footage-crop", default="160x120", help="centre crop of the footage, LR WIDTHxHEIGHT "
                                                             "(default 160x120; the whole frame where smaller)")
    p.add_argument("--out", metavar="DIR", help="keep the clips, LR videos, outputs, JSON and table here "
                                                "(a new or empty folder)")
    p.add_argument("--json", help="also write the JSON of everything to this file")
    p.add_argument("--score-cache", metavar="DIR", help="keep the bicubic and Lanczos scores here, keyed on the "
                                                        "LR and GT clips' bytes, the settings and vsr_lab's code, "
                                                        "so a bench of the next checkpoint scores only the model "
                                                        "(default: vsr_lab/realbench_scores under $XDG_CACHE_HOME "
                                                        "or ~/.cache)")
    p.add_argument("--no-score-cache", action="store_true", help="score bicubic and Lanczos afresh, keep nothing")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default auto)")
    p.add_argument("--precision", default="auto", choices=("auto", "fp32", "bf16", "fp16"),
                   help="auto: bf16 on CUDA, fp32 on CPU")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=run)


def _size(text: str, flag: str) -> tuple[int, int]:
    try:
        width, height = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise UserError(f"{flag} must be WIDTHxHEIGHT, e.g. 256x192; got {text!r}") from None
    if width < 1 or height < 1:
        raise UserError(f"{flag} must be positive; got {text!r}")
    return width, height


def _conditions(text: str | None) -> list[str]:
    names = metric_list(text) if text is not None else list(REAL_CONDITIONS.names())
    for name in names:
        if name not in REAL_CONDITIONS.names():
            raise UserError(f"--conditions: unknown condition {name!r}; choose from "
                            f"{', '.join(REAL_CONDITIONS.names())}")
    if not names:
        raise UserError("--conditions: name at least one condition")
    return names


def _footage(args) -> list[str]:
    if args.no_footage:
        return []
    if args.footage:
        stems = [Path(path).stem for path in args.footage]
        if len(set(stems)) < len(stems):
            raise UserError("--footage: two files share a name stem (each gets a folder by its stem); rename one")
        return [existing(path, "--footage") for path in args.footage]
    if Path(DEFAULT_FOOTAGE).is_file():
        return [DEFAULT_FOOTAGE]
    print(f"no real footage: {DEFAULT_FOOTAGE} is not installed (Debian package opencv-doc); give --footage FILE")
    return []


def _check_out(out: str | None) -> None:
    path = Path(out).expanduser() if out else None
    if path is not None and path.exists() and (not path.is_dir() or any(path.iterdir())):
        raise UserError(f"--out {out}: {'is a file' if not path.is_dir() else 'is not empty'}; give a new folder")


def _score_cache(args) -> str | None:
    """The score cache folder, made now: one that cannot be is an error before the bench starts."""
    if args.no_score_cache:
        return None
    from vsr_lab.data.pristine import default_cache_dir

    path = Path(args.score_cache).expanduser() if args.score_cache else default_cache_dir() / "realbench_scores"
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"--score-cache: cannot make the folder {path} ({exc.strerror}); give another, "
                        "or --no-score-cache") from None
    return str(path)


def run(args) -> int:
    if args.ckpt is None and args.config is None:
        raise UserError("realbench: give --ckpt, --config, or both")
    existing(args.ckpt, "checkpoint")
    existing(args.config, "config file")
    existing(args.photos, "--photos folder")
    conditions = _conditions(args.conditions)
    size = _size(args.size, "--size")
    crop = _size(args.footage_crop, "--footage-crop")
    if args.clips < 1 or args.frames < 2 or args.footage_frames < 2:
        raise UserError("--clips must be >= 1, and --frames and --footage-frames >= 2 (temporal metrics need pairs)")
    footage = _footage(args)
    _check_out(args.out)
    writable_file(args.json, "--json")
    score_cache = _score_cache(args)
    from vsr_lab.config.loading import load_config, load_saved_config  # torch and the model load from here
    from vsr_lab.training.runner import read_checkpoint_meta

    meta = read_checkpoint_meta(args.ckpt) if args.ckpt else None  # not a checkpoint: one error, now
    cfg = (load_config(args.config, args.overrides) if args.config else
           load_saved_config(f"checkpoint {args.ckpt}", meta["config"], args.overrides))
    scale = cfg.data.scale
    if size[0] % (2 * scale) or size[1] % (2 * scale):
        raise UserError(f"--size {args.size}: both sides must be multiples of {2 * scale} (2 x the model's scale "
                        f"{scale}: H.264 4:2:0 needs even LR sides)")
    if args.ckpt and cfg.tracking.enabled:
        from vsr_lab.tracking.mlflow_setup import check_tracking_uri

        check_tracking_uri(cfg.tracking.tracking_uri)  # a dead tracking server: one error before the work
    from vsr_lab.benchmarks.realbench.report import JSON_NAME, TABLE_NAME, format_report, log_to_mlflow, write_report
    from vsr_lab.benchmarks.realbench.runner import RealbenchRequest, run_realbench
    from vsr_lab.inference.runner import trained_on_clean_lr
    from vsr_lab.json_output import write_json

    req = RealbenchRequest(ckpt=args.ckpt, config=args.config, overrides=args.overrides, conditions=conditions,
                           photos=args.photos, clips=args.clips, frames=args.frames, size=size, footage=footage,
                           footage_frames=args.footage_frames, footage_crop=crop, out=args.out, device=args.device,
                           precision=args.precision, progress=not args.no_progress,
                           score_cache=score_cache)
    result = run_realbench(req)
    result["model"] = {"ckpt": args.ckpt, "config": args.config, "overrides": list(args.overrides),
                       "run_name": meta and meta.get("run_name"), "batches_done": meta and meta.get("batches_done"),
                       "trained_on_clean_lr": trained_on_clean_lr(cfg) if args.ckpt else None}
    table = format_report(result)
    print(table)
    if args.out:
        write_report(result, table, Path(args.out).expanduser())
        print(f"wrote {args.out}/ (clips, LR videos, outputs, {JSON_NAME}, {TABLE_NAME})")
    if args.json:
        write_json(result, args.json)
        print(f"wrote {args.json}")
    print(log_to_mlflow(result, table, cfg, args.ckpt, meta))
    return 0
