"""Corrupt-media fuzzing: small real clips made here, mutated (truncated at many offsets, bit
flips, zeroed spans, wrong extensions, zero-byte files, a container with no video stream) and
run through every reader path of vsr_lab.

Every (file, reader) case must end in a correct read or one `UserError` line naming the file,
within TIME_LIMIT_S. Cases run in a worker process, so a hang (the parent kills the worker after
the limit) or a crash (a segfault in a decoder) is recorded as a failure of that case and the
worker restarts at the next one, instead of stopping the suite. Input files are hashed before
and after: a reader must never change or remove them.

Run by tests/test_media_fuzz.py; `python tests/helpers/media_fuzz.py worker CASES START` is the worker.
"""

from __future__ import annotations

import hashlib
import json
import os
import queue
import shutil
import subprocess
import sys
import threading
import time
import traceback
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
TIME_LIMIT_S = 60.0          # per case; a healthy case takes well under a second
WORKER_DECORD_TIMEOUT_S = 5  # so a hung decord call falls back to PyAV well inside the limit
FRAMES = 6


# ----------------------------------------------------------------------------- samples

def _moving_frames(n: int, h: int, w: int, seed: int = 0) -> list[np.ndarray]:
    """A textured image drifting one pixel per frame (real motion, compressible)."""
    rng = np.random.default_rng(seed)
    base = (rng.random((h + n, w + n, 3)) * 255).astype(np.uint8)
    yy, xx = np.mgrid[0:h + n, 0:w + n]
    base[..., 0] = ((xx * 7 + yy * 3) % 256).astype(np.uint8)
    return [np.ascontiguousarray(base[t:t + h, t:t + w]) for t in range(n)]


def _audio_only(path: Path) -> None:
    """A valid container holding one audio stream and no video stream."""
    import av

    with av.open(str(path), "w") as container:
        stream = container.add_stream("mp2", rate=44100)
        stream.layout = "mono"
        for i in range(5):
            frame = av.AudioFrame.from_ndarray(np.zeros((1, 1152), dtype=np.int16), format="s16", layout="mono")
            frame.sample_rate, frame.pts = 44100, i * 1152
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)


def make_samples(root: Path) -> dict[str, Path]:
    """The clean media every mutation starts from."""
    from vsr_lab.media.frame_writer import write_frame_folder
    from vsr_lab.media.video_writer import VideoWriter

    root.mkdir(parents=True, exist_ok=True)
    samples = {}
    for name, (h, w) in {"h264_64x48.mp4": (48, 64), "h264_48x40.mkv": (40, 48)}.items():
        with VideoWriter(root / name, fps=24, crf=18) as writer:
            for frame in _moving_frames(FRAMES, h, w):
                writer.write(frame)
        samples[name] = root / name
    write_frame_folder(_moving_frames(FRAMES, 48, 64, seed=1), root / "frames")
    samples["frame.png"] = root / "frames" / "00000002.png"
    _audio_only(root / "audio_only.mkv")
    samples["audio_only.mkv"] = root / "audio_only.mkv"
    return samples


# ----------------------------------------------------------------------------- mutations

@dataclass(frozen=True)
class Mutant:
    """One mutated file: `kind` video or frame (a frame of a PNG folder), how it was made."""

    path: str
    kind: str
    source: str
    mutation: str


def _truncations(data: bytes, rng, count: int) -> list[tuple[str, bytes]]:
    n = len(data)
    spread = np.linspace(0, n, num=max(count // 2, 2), endpoint=False).astype(int)[1:]
    offsets = sorted(set(spread.tolist()) | set(rng.integers(1, n, size=count - len(spread)).tolist()))
    return [(f"truncate@{o}", data[:o]) for o in offsets]


def _bit_flips(data: bytes, rng, count: int) -> list[tuple[str, bytes]]:
    out = []
    for i in range(count):
        flips = int(rng.choice([1, 2, 8, 64]))
        buf = bytearray(data)
        positions = rng.integers(0, len(buf) * 8, size=flips)
        for p in positions:
            buf[p // 8] ^= 1 << (p % 8)
        out.append((f"flip{flips}@{int(positions[0]) // 8}", bytes(buf)))
    return out


def _zero_spans(data: bytes, rng, count: int) -> list[tuple[str, bytes]]:
    out = []
    for _ in range(count):
        start = int(rng.integers(0, len(data)))
        length = int(rng.integers(1, 256))
        buf = bytearray(data)
        buf[start:start + length] = bytes(len(buf[start:start + length]))
        out.append((f"zero{length}@{start}", bytes(buf)))
    return out


def make_mutants(samples: dict[str, Path], out: Path, seed: int, per_sample: int) -> list[Mutant]:
    """`per_sample` mutations of each video and of one PNG frame (about half truncations, the rest
    bit flips and zeroed spans), plus the fixed odd files."""
    rng = np.random.default_rng(seed)
    mutants: list[Mutant] = []
    trunc, flips = max(per_sample // 2, 2), max(per_sample // 3, 1)
    zeros = max(per_sample - trunc - flips, 1)
    for name in ("h264_64x48.mp4", "h264_48x40.mkv", "frame.png"):
        data = samples[name].read_bytes()
        kind = "frame" if name.endswith(".png") else "video"
        variants = _truncations(data, rng, trunc) + _bit_flips(data, rng, flips) + _zero_spans(data, rng, zeros)
        for i, (how, blob) in enumerate(variants):
            mutants.append(_place(out, f"{Path(name).stem}_{i:04d}", Path(name).suffix, blob, kind, name, how))
    video, png = samples["h264_64x48.mp4"].read_bytes(), samples["frame.png"].read_bytes()
    odd = [(".png", video, "frame", "mp4 bytes named .png"), (".mp4", png, "video", "png bytes named .mp4"),
           (".mkv", b"not a video at all\n" * 20, "video", "text named .mkv"),
           (".jpg", png, "frame", "png bytes named .jpg"), (".mp4", b"", "video", "zero bytes"),
           (".png", b"", "frame", "zero bytes"), (".mkv", samples["audio_only.mkv"].read_bytes(), "video",
                                                  "container with no video stream")]
    for i, (ext, blob, kind, how) in enumerate(odd):
        mutants.append(_place(out, f"odd_{i:02d}", ext, blob, kind, "-", how))
    return mutants


def _place(out: Path, stem: str, ext: str, blob: bytes, kind: str, source: str, how: str) -> Mutant:
    folder = out / stem
    folder.mkdir(parents=True)
    path = folder / f"clip{ext}"
    path.write_bytes(blob)
    return Mutant(str(path), kind, source, how)


# ----------------------------------------------------------------------------- readers

def _clip_root(m: Mutant, clean: Path) -> tuple[Path, Path]:
    """(pred clip, matching GT clip): a video file as is; a mutated frame inside a copy of the
    clean frame folder (the other frames untouched), built once per mutant."""
    path = Path(m.path)
    if m.kind == "video":
        return path, clean / (m.source if m.source.endswith((".mp4", ".mkv")) else "h264_64x48.mp4")
    folder = path.parent / "clipdir" / "clip"
    if not folder.exists():
        folder.mkdir(parents=True)
        for f in sorted((clean / "frames").iterdir()):
            shutil.copy(f, folder / f.name)
        (folder / "00000002.png").unlink()
        shutil.copy(path, folder / f"00000002{path.suffix}")
    return folder, clean / "frames"


def read_clip_info(m, clean, backend):
    from vsr_lab.media.clip_reader import clip_info

    clip, _ = _clip_root(m, clean)
    info = clip_info(clip, backend=backend)
    assert info.num_frames >= 1 and info.height >= 1 and info.width >= 1, info
    return f"{info.num_frames}x{info.height}x{info.width}"


def read_whole_clip(m, clean, backend):
    from vsr_lab.media.clip_reader import clip_info, read_clip

    clip, _ = _clip_root(m, clean)
    frames = read_clip(clip, backend=backend)
    info = clip_info(clip, backend=backend)
    assert tuple(frames.shape) == (info.num_frames, 3, info.height, info.width), (frames.shape, info)
    assert float(frames.min()) >= 0.0 and float(frames.max()) <= 1.0
    return f"{tuple(frames.shape)}"


def read_folder_dataset(m, clean, split):
    from vsr_lab.data.folder_dataset import FolderClipDataset

    clip, _ = _clip_root(m, clean)
    root = clip.parent
    ds = FolderClipDataset(root, num_frames=2 if split == "train" else 0, scale=4,
                           crop_size=16 if split == "train" else None, split=split)
    item = ds[0]
    assert item["gt"].shape[0] == item["lr"].shape[0] and item["gt"].shape[-1] == 4 * item["lr"].shape[-1]
    return f"{tuple(item['gt'].shape)}"


def run_evaluate(m, clean):
    """`python -m vsr_lab evaluate` (in process) of the mutated clip against the clean one."""
    from vsr_lab.cli import main

    clip, gt = _clip_root(m, clean)
    out = Path(m.path).parent / "scores.json"
    rc = main(["evaluate", "--pred", str(clip), "--gt", str(gt), "--json", str(out), "--flow", "dis"])
    if rc == 0:
        assert json.loads(out.read_text())["mean"], "no scores"
    return f"rc {rc}"


# Every reader path a user's file goes through. TODO(upscale): add `upscale` (vsr_lab/inference,
# being written in parallel) here as one more entry once it exists, e.g.
#   "upscale": lambda m, c: main(["upscale", "--input", clip, "--out", ...]) with a tiny config.
READERS = {
    "clip_info/auto": lambda m, c: read_clip_info(m, c, "auto"),
    "clip_info/pyav": lambda m, c: read_clip_info(m, c, "pyav"),
    "clip_info/decord": lambda m, c: read_clip_info(m, c, "decord"),
    "read_clip/auto": lambda m, c: read_whole_clip(m, c, "auto"),
    "read_clip/pyav": lambda m, c: read_whole_clip(m, c, "pyav"),
    "folder_dataset/train": lambda m, c: read_folder_dataset(m, c, "train"),
    "folder_dataset/val": lambda m, c: read_folder_dataset(m, c, "val"),
    "evaluate": run_evaluate,
}
FRAME_READERS = ("clip_info/auto", "read_clip/auto", "folder_dataset/train", "folder_dataset/val", "evaluate")


def cases_for(mutants: list[Mutant]) -> list[dict]:
    return [{"mutant": asdict(m), "reader": r} for m in mutants
            for r in (READERS if m.kind == "video" else FRAME_READERS)]


# ----------------------------------------------------------------------------- worker

def _run_case(case: dict, clean: Path) -> dict:
    from vsr_lab.errors import UserError

    m = Mutant(**case["mutant"])
    try:
        import contextlib
        import io

        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()) as err:
            detail = READERS[case["reader"]](m, clean)
        if detail == "rc 2":  # the CLI printed the UserError itself
            line = err.getvalue().strip()
            return {"outcome": "user_error", "message": line, "names_file": _names_file(line, m)}
        return {"outcome": "ok", "detail": detail}
    except UserError as exc:
        msg = str(exc)
        return {"outcome": "user_error", "message": msg, "one_line": "\n" not in msg, "names_file": _names_file(msg, m)}
    except Exception:  # noqa: BLE001 - anything else is a bug, with its traceback
        return {"outcome": "bug", "message": traceback.format_exc(limit=8)}


def _names_file(message: str, m: Mutant) -> bool:
    """The error names the mutated file, or the clip (folder) holding the mutated frame."""
    path = Path(m.path)
    return str(path) in message or str(path.parent) in message


def _warm_up(clean: Path) -> None:
    import contextlib
    import io

    import decord  # noqa: F401
    from vsr_lab.cli import main
    from vsr_lab.data.folder_dataset import FolderClipDataset  # noqa: F401

    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        main(["evaluate", "--pred", str(clean / "frames"), "--gt", str(clean / "frames"), "--flow", "dis"])


def worker(cases_file: str, start: int) -> None:
    cases = json.loads(Path(cases_file).read_text())
    clean = Path(cases["clean"])
    # The protocol gets its own copy of stdout; fd 1 goes where stderr goes, so a decoder
    # writing to stdout from C cannot garble it.
    protocol = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    _warm_up(clean)  # imports and first calls happen before the first case's clock starts
    for i in range(start, len(cases["cases"])):
        protocol.write(json.dumps({"i": i, "event": "start"}) + "\n")
        protocol.flush()
        result = _run_case(cases["cases"][i], clean)
        protocol.write(json.dumps({"i": i, "event": "end", **result}) + "\n")
        protocol.flush()


# ----------------------------------------------------------------------------- parent

def file_hashes(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha1(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def run_cases(cases: list[dict], clean: Path, work: Path, time_limit: float = TIME_LIMIT_S) -> list[dict]:
    """Each case's result, `hang` when it passed the time limit, `crash` when the worker died."""
    cases_file = work / "cases.json"
    cases_file.write_text(json.dumps({"clean": str(clean), "cases": cases}))
    env = {**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
           "VSR_LAB_DECORD_TIMEOUT": str(WORKER_DECORD_TIMEOUT_S), "OMP_NUM_THREADS": "1"}
    results: list[dict | None] = [None] * len(cases)
    start = 0
    while start < len(cases):
        proc = subprocess.Popen([sys.executable, __file__, "worker", str(cases_file), str(start)],
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)
        lines: queue.Queue = queue.Queue()
        threading.Thread(target=lambda: [lines.put(line) for line in proc.stdout] + [lines.put(None)],
                         daemon=True).start()
        current, started = None, time.monotonic()
        startup_limit = time.monotonic() + 300  # importing torch on a loaded machine
        while True:
            limit = (started + time_limit) if current is not None else startup_limit
            try:
                line = lines.get(timeout=max(0.0, limit - time.monotonic()))
            except queue.Empty:
                proc.kill()
                proc.wait()
                if current is None:
                    raise RuntimeError("fuzz worker did not start")
                results[current] = {"outcome": "hang", "seconds": round(time.monotonic() - started, 1)}
                start = current + 1
                break
            if line is None:  # the worker exited
                proc.wait()
                if current is not None:
                    results[current] = {"outcome": "crash", "returncode": proc.returncode}
                    start = current + 1
                else:
                    todo = [i for i in range(start, len(cases)) if results[i] is None]
                    if todo:
                        raise RuntimeError(f"fuzz worker exited with {proc.returncode} before case {todo[0]}")
                    start = len(cases)
                break
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if event["event"] == "start":
                current, started = event["i"], time.monotonic()
            else:
                event["seconds"] = round(time.monotonic() - started, 2)
                results[event["i"]] = event
                current = None
    return [{**c, **r} for c, r in zip(cases, results)]


def run_cases_here(cases: list[dict], clean: Path, time_limit: float = TIME_LIMIT_S) -> list[dict]:
    """The same cases in this process, each on a thread given `time_limit` (a hang is reported
    and its thread abandoned). Cheaper than a worker (no second torch import) but a decoder
    crash would end this process: for fixed mutations already run isolated."""
    _warm_up(clean)
    results = []
    for case in cases:
        box: dict = {}
        thread = threading.Thread(target=lambda: box.update(_run_case(case, clean)), daemon=True)
        started = time.monotonic()
        thread.start()
        thread.join(time_limit)
        seconds = round(time.monotonic() - started, 2)
        results.append({**case, **(box if not thread.is_alive() else {"outcome": "hang"}), "seconds": seconds})
    return results


def fuzz(work: Path, seed: int, per_sample: int, isolated: bool = True) -> dict:
    """Make samples and mutants under `work`, run every case (in a worker process when
    `isolated`, else on threads here); the summary and the failures."""
    clean = work / "clean"
    samples = make_samples(clean)
    mutants = make_mutants(samples, work / "mutants", seed, per_sample)
    before = file_hashes(clean), {m.path: hashlib.sha1(Path(m.path).read_bytes()).hexdigest() for m in mutants}
    t0 = time.monotonic()
    cases = cases_for(mutants)
    results = run_cases(cases, clean, work) if isolated else run_cases_here(cases, clean)
    after_clean = file_hashes(clean)
    lost = [p for p, h in before[0].items() if after_clean.get(p) != h]
    lost += [p for p, h in before[1].items() if not Path(p).is_file() or
             hashlib.sha1(Path(p).read_bytes()).hexdigest() != h]
    outcomes: dict[str, int] = {}
    for r in results:
        outcomes[r["outcome"]] = outcomes.get(r["outcome"], 0) + 1
    failures = [r for r in results if r["outcome"] in ("bug", "hang", "crash")
                or (r["outcome"] == "user_error" and not (r.get("one_line", True) and r["names_file"]))]
    return {"seed": seed, "mutated_files": len(mutants), "cases": len(results), "outcomes": outcomes,
            "lost_or_changed_files": lost, "failures": failures, "seconds": round(time.monotonic() - t0, 1),
            "slowest_case_s": max(r.get("seconds", 0) for r in results)}


if __name__ == "__main__":
    if sys.argv[1] == "worker":
        worker(sys.argv[2], int(sys.argv[3]))
    else:  # python tests/helpers/media_fuzz.py WORKDIR SEED PER_SAMPLE: summary printed, in full in WORKDIR/summary.json
        summary = fuzz(Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]))
        (Path(sys.argv[1]) / "summary.json").write_text(json.dumps(summary, indent=1))
        print(json.dumps({k: v for k, v in summary.items() if k != "failures"} | {"failures": len(summary["failures"])}))
