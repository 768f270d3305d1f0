"""Many videos on many devices (or nodes): Lightning's predict loop, one whole video per step.

Each rank gets whole videos (Lightning's predict sampler never repeats an item), largest first
and dealt round-robin, so the ranks finish at about the same time. `predict_step` streams its video
through an `Upscaler` on the rank's device and returns a small result record; the video itself is
written while streaming (it would not fit in memory as a prediction). `ResultWriter`, a
`BasePredictionWriter`, appends each record to a per-rank JSON-lines file next to the outputs,
which rank zero reads back after the barrier for the summary.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import lightning as L
from lightning.pytorch.callbacks import BasePredictionWriter
from torch.utils.data import DataLoader, Dataset

from vsr_lab.errors import UserError
from vsr_lab.inference.jobs import Job
from vsr_lab.inference.progress import UpscaleProgress
from vsr_lab.inference.upscaler import Upscaler, UpscaleSettings, VideoResult
from vsr_lab.models.flow import FlowEstimator
from vsr_lab.models.generator import OneStepVSRGenerator


class VideoJobs(Dataset):
    """Jobs as plain dicts of strings (nothing for Lightning to move to a device)."""

    def __init__(self, jobs: list[Job]):
        self.jobs = [{"input": str(j.input), "output": str(j.output), "frames": j.frames} for j in jobs]

    def __len__(self) -> int:
        return len(self.jobs)

    def __getitem__(self, i: int) -> dict:
        return self.jobs[i]


def _size(job: Job) -> int:
    """Bytes on disk: a cheap stand-in for the work a video takes."""
    p = job.input
    return sum(f.stat().st_size for f in p.iterdir()) if p.is_dir() else p.stat().st_size


class UpscaleModule(L.LightningModule):
    """`predict_step(job)` upscales one video on this rank's device and returns its record."""

    def __init__(self, generator: OneStepVSRGenerator, flow: FlowEstimator | None, settings: UpscaleSettings,
                 precision: str, progress: bool = True):
        super().__init__()
        self.generator = generator
        self.flow = flow
        self.settings = settings
        self.precision_name = precision
        self.show_progress = progress
        self._upscaler: Upscaler | None = None
        self._bar: UpscaleProgress | None = None

    def on_predict_start(self) -> None:
        self._upscaler = Upscaler(self.generator, self.flow, self.settings, self.device, self.precision_name)
        rank = self.trainer.global_rank
        self._bar = UpscaleProgress(0, self.show_progress, position=rank, prefix=f"[rank {rank}] ")

    def predict_step(self, job: dict, batch_idx: int) -> dict:
        name = Path(job["input"]).name
        try:
            result = self._upscaler.upscale(job["input"], job["output"], job["frames"], on_frame=self._bar.frame,
                                            on_start=lambda info: self._bar.start(name, info.num_frames))
        except UserError as e:
            result = VideoResult(job["input"], job["output"], status="failed", error=str(e))
        self._bar.close_video()
        record = result.as_dict()
        record["rank"] = self.trainer.global_rank
        record["device"] = str(self.device)
        return record

    def on_predict_end(self) -> None:
        if self._bar is not None:
            self._bar.close()


class ResultWriter(BasePredictionWriter):
    """Appends every video's record to `<folder>/<run>-rank<r>.jsonl` as soon as the video is
    done; `run` is a token rank zero draws and broadcasts, so the files of one run are told apart
    from any earlier run's (the folder must be one all ranks see, like the output folder)."""

    def __init__(self, folder: Path):
        super().__init__(write_interval="batch")
        self.folder = Path(folder)
        self.run = ""

    def setup(self, trainer, pl_module, stage: str) -> None:
        self.run = trainer.strategy.broadcast(uuid.uuid4().hex if trainer.is_global_zero else None)

    def write_on_batch_end(self, trainer, pl_module, prediction, batch_indices, batch, batch_idx, dataloader_idx):
        self.folder.mkdir(parents=True, exist_ok=True)
        with open(self.folder / f"{self.run}-rank{trainer.global_rank}.jsonl", "a") as f:
            f.write(json.dumps(prediction) + "\n")

    def collect(self) -> list[dict]:
        """Every rank's records of this run (read on rank zero after the barrier); files removed."""
        records = []
        for file in sorted(self.folder.glob(f"{self.run}-rank*.jsonl")):
            records += [json.loads(line) for line in file.read_text().splitlines() if line.strip()]
            file.unlink()
        return records


def predict_videos(jobs: list[Job], generator: OneStepVSRGenerator, flow: FlowEstimator | None,
                   settings: UpscaleSettings, precision: str, accelerator: str, devices: int, num_nodes: int,
                   results_dir: Path, progress: bool = True) -> tuple[list[dict] | None, bool]:
    """Run the jobs over `devices` x `num_nodes` processes, each rank writing its records under
    `results_dir`. Returns (records, is_rank_zero); only rank zero gets the records of all ranks."""
    jobs = sorted(jobs, key=_size, reverse=True)
    loader = DataLoader(VideoJobs(jobs), batch_size=None, shuffle=False)
    writer = ResultWriter(results_dir)
    trainer = L.Trainer(accelerator=accelerator, devices=devices, num_nodes=num_nodes,
                        strategy="ddp" if devices * num_nodes > 1 else "auto", logger=False,
                        enable_progress_bar=False, enable_model_summary=False, enable_checkpointing=False,
                        callbacks=[writer], inference_mode=True)
    module = UpscaleModule(generator, flow, settings, precision, progress)
    trainer.predict(module, loader, return_predictions=False)
    trainer.strategy.barrier("upscale-results")
    if trainer.global_rank != 0:
        return None, False
    return writer.collect(), True
