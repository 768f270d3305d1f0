"""`sample-clip`: a real clip to try `upscale` and `evaluate` on, with nothing downloaded: a camera
moving over a scikit-image photo, its HR frames as ground truth and its LR as a video file."""

from __future__ import annotations

from vsr_lab.errors import UserError

HELD_OUT_PHOTOS = ("hubble_deep_field", "camera", "colorwheel")  # no built-in training or validation clip uses them


def add_parser(sub) -> None:
    p = sub.add_parser("sample-clip", help="write a sample clip to upscale and score: GT frames and an LR video",
                       description="Writes OUT/gt/00000000.png ... (the HR frames, ground truth for `evaluate`) and "
                                   "OUT/lr.mkv (the bicubic-downscaled frames, lossless FFV1 RGB at 24 fps; with --audio "
                                   "an AAC audio track too), the input for `upscale`. A camera pans, zooms and turns "
                                   "smoothly over a scikit-image photo (nothing is downloaded) with sub-pixel motion, so "
                                   "the recurrence has real flow to follow. Then try: python -m vsr_lab upscale --ckpt "
                                   "CKPT --input OUT/lr.mkv --output OUT/x4.mp4, and python -m vsr_lab evaluate --pred "
                                   "OUT/x4.mp4 --gt OUT/gt --lr OUT/lr.mkv.")
    p.add_argument("out", help="folder to write gt/ and lr.mkv into (created; must not hold them already)")
    p.add_argument("--photo", default="hubble_deep_field",
                   help=f"scikit-image photo to film (default hubble_deep_field; held out from the built-in clips: "
                        f"{', '.join(HELD_OUT_PHOTOS)})")
    p.add_argument("--frames", type=int, default=30, help="number of frames (default 30)")
    p.add_argument("--size", default="256x192", help="HR WIDTHxHEIGHT, multiples of --scale (default 256x192)")
    p.add_argument("--scale", type=int, default=4, help="HR / LR size ratio (default 4)")
    p.add_argument("--audio", action="store_true",
                   help="add an audio track (a 48 kHz stereo AAC tone rising a semitone each second), so upscale's "
                        "audio passthrough can be tried end to end")
    p.set_defaults(func=run)


def run(args) -> int:
    try:
        width, height = (int(v) for v in args.size.lower().split("x"))
    except ValueError:
        raise UserError(f"--size must be WIDTHxHEIGHT, e.g. 256x192; got {args.size!r}") from None
    if args.scale < 1 or width % args.scale or height % args.scale or args.frames < 1:
        raise UserError(f"--size {args.size} must be multiples of --scale {args.scale}, and --frames >= 1")
    from vsr_lab.inference.sample_clip import make_sample_clip

    gt, lr = make_sample_clip(args.out, args.photo, args.frames, width, height, args.scale, args.audio)
    print(f"wrote {gt}/ ({args.frames} HR frames of {width}x{height}, the ground truth for evaluate --gt)")
    print(f"wrote {lr} ({args.frames} LR frames of {width // args.scale}x{height // args.scale}, x1/{args.scale} "
          f"bicubic, lossless FFV1 at 24 fps{', with an AAC audio track' if args.audio else ''}: the input for upscale)")
    return 0
