"""Typed schema of every vsr_lab setting, with the tiny CPU defaults.

OmegaConf checks each YAML file and each command-line override against these dataclasses, so an
unknown key or a wrong type is caught before anything runs. Every component of the method has its
switch here: an ablation is a YAML file that flips one of them.

Each field declares what it accepts, next to it, and `load_config` checks it before anything is
built (errors name the key, the value, the rule and the file or "command line"):
- a name from a set: `one_of(default, *names)`, or `registered(default, REGISTRY)` for the
  entries of a `vsr_lab.registry.Registry`;
- a number (or a list of numbers): `checked(default, *rules)` with rules from
  config/constraints.py: `POSITIVE`, `NON_NEGATIVE`, `FRACTION` ([0, 1]), `at_least(n)`,
  `above(x)`, `between(lo, hi, low_open=, high_open=)`, `POWER_OF_TWO`, `SEED`, `FINITE`,
  `each(rule, length=)` for lists, `ordered_pair(rule)` for a [low, high] range, `either(...)`.
  Every numeric field needs at least one rule (tests/test_config_rules.py enumerates them).
Rules that relate several keys (hr_size divisible by scale, ...) live in config/rules.py only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from vsr_lab import registry as reg
from vsr_lab.config.constraints import (DEVICES, FINITE, FRACTION, NON_NEGATIVE, POSITIVE, SEED, at_least,
                                        between, checked, each)


def one_of(default: str, *options: str):
    """A field whose value must be one of a fixed set of names, declared here next to the field."""
    return field(default=default, metadata={"choices": options})


def registered(default, registry: reg.Registry, each: bool = False):
    """A field naming an entry of `registry` (`each`: a list of such names); the allowed names
    are whatever has registered itself, so adding an entry needs no edit here."""
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata={"registry": registry, "each": each})
    return field(default=default, metadata={"registry": registry, "each": each})


@dataclass
class MotionConfig:
    """Virtual camera of the built-in sample clips (per frame, at HR)."""

    max_shift: float = checked(2.0, NON_NEGATIVE)
    max_zoom: float = checked(0.02, between(0, 1, high_open=True))  # zoom *= 1 + rate: -1 would collapse
    max_rotation_deg: float = checked(1.0, between(0, 180))


@dataclass
class SharpenConfig:
    """Unsharp-masked training targets (Real-ESRGAN's USM): training GT only, LR from the plain GT."""

    enabled: bool = False
    weight: float = checked(0.5, NON_NEGATIVE)
    kernel_size: int = checked(51, at_least(3))  # an even size is rounded up to odd
    threshold: float = checked(10.0, between(0, 255))  # 8-bit levels


@dataclass
class DegradationConfig:
    """How LR frames are made from HR frames: `bicubic` (clean, the default) or a pipeline preset
    (`realbasicvsr`, `light`, or `pipeline` with no stages of its own). `stages` maps stage names
    to settings merged over the preset's (`{codec: {enabled: false}}`; a new name needs `kind`,
    one of vsr_lab.registry.DEGRADATION_STAGES; ranges are [low, high] lists); `shuffle` names
    the stages applied in random order per clip (null: the preset's). See vsr_lab/data/degradations/.
    """

    type: str = registered("bicubic", reg.DEGRADATIONS)
    stages: Dict[str, Any] = field(default_factory=dict)
    shuffle: Optional[List[str]] = None
    usm_gt: SharpenConfig = field(default_factory=SharpenConfig)


@dataclass
class AugmentConfig:
    """Training augmentation of the clip-folder sources (folder, reds, vimeo90k), the same for
    every frame of a clip: flips, time reversal, and the frame interval k (every k-th frame),
    drawn per clip from `frame_intervals`. (Photo clips flip their photo instead: `data.photo_flips`.)"""

    hflip: bool = True
    vflip: bool = False
    reverse: bool = False
    frame_intervals: List[int] = checked([1], each(at_least(1)))


@dataclass
class DataConfig:
    """Where clips come from (`source`, a registry entry): `synthetic` (built-in sample clips with
    exact flow), `photos` (your photos as moving-camera clips with exact flow), `folder`, `reds`,
    `vimeo90k` (real clips). Each split reads its own root; `test` is held out from both others.
    """

    source: str = registered("synthetic", reg.DATA_SOURCES)
    scale: int = checked(4, at_least(1))
    num_frames: int = checked(5, at_least(1))
    hr_size: int = checked(64, at_least(1))
    # synthetic and photos, training clips: the HR side of the window that is rendered and degraded
    # before the hr_size training crop is cut from it (null: hr_size), so a codec or blur meets a
    # frame of a real frame's size (a 16 x 16 LR crop is one H.264 macroblock)
    degrade_size: Optional[int] = checked(None, at_least(1))
    batch_size: int = checked(4, at_least(1))
    num_workers: int = checked(0, NON_NEGATIVE)
    train_clips: int = checked(100_000, at_least(1))
    val_clips: int = checked(4, at_least(1))
    val_frames: int = checked(8, NON_NEGATIVE)  # 0: every frame of a folder clip
    val_hr_size: int = checked(96, at_least(1))
    seed: int = checked(0, SEED)
    min_detail: float = checked(0.004, NON_NEGATIVE)  # synthetic clips: redraw windows flatter than this (mean |GT - bicubic|)
    motion: MotionConfig = field(default_factory=MotionConfig)
    degradation: DegradationConfig = field(default_factory=DegradationConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    root: Optional[str] = None
    lr_root: Optional[str] = None
    val_root: Optional[str] = None
    val_lr_root: Optional[str] = None
    test_root: Optional[str] = None
    test_lr_root: Optional[str] = None
    reds_val_clips: List[str] = field(default_factory=lambda: ["000", "011", "015", "020"])  # REDS4
    # synthetic: the built-in photos training clips are cut from (validation and test ones refused)
    train_photos: List[str] = registered(["astronaut", "chelsea", "immunohistochemistry", "motorcycle", "retina",
                                          "brick"], reg.BUILTIN_PHOTOS, each=True)
    # synthetic and photos: each training clip sees its photo under one of the 8 flips and 90-degree
    # rotations, drawn per clip (validation and test clips never)
    photo_flips: bool = False
    photo_root: Optional[str] = None       # photos: training photos
    val_photo_root: Optional[str] = None   # photos: validation photos (null: the built-in ones)
    test_photo_root: Optional[str] = None  # photos: test photos (null: the built-in held-out ones)


@dataclass
class LoraConfig:
    """LoRA fine-tuning of the pretrained sd21 weights (PEFT adapters through diffusers).

    Every weight read from `model.backbone.pretrained_path` is frozen; `parts` get low-rank
    adapters on the layers named by `target_modules` (PEFT suffix match), and modules that do not
    come from the folder (recurrent branch, light encoder) train in full. Checkpoints then hold
    only the trainable weights plus a reference (path, sha256) to the base weights;
    `python -m vsr_lab merge-lora` writes the merged model as a plain diffusers folder.
    """

    enabled: bool = False
    rank: int = checked(4, at_least(1))
    alpha: float = checked(4.0, POSITIVE)  # adapters scale by alpha / rank
    parts: List[str] = field(default_factory=lambda: ["unet", "vae_encoder"],
                             metadata={"choices": ("unet", "vae_encoder", "vae_decoder"), "each": True})
    # OSEDiff's UNet targets: attention projections, feed-forward and every ResNet/sampler conv
    target_modules: List[str] = field(default_factory=lambda: [
        "to_q", "to_k", "to_v", "to_out.0", "proj_in", "proj_out", "ff.net.0.proj", "ff.net.2",
        "conv1", "conv2", "conv_shortcut", "conv", "conv_in", "conv_out"])


@dataclass
class BackboneConfig:
    """The one-step diffusion backbone (encoder -> UNet at a fixed timestep -> decoder)."""

    preset: str = registered("tiny", reg.GENERATOR_PRESETS)
    pretrained_path: Optional[str] = None
    timestep: int = checked(100, between(0, 999))  # SD's 1000-step schedule
    prediction_type: str = one_of("epsilon", "epsilon", "v_prediction")
    block_out_channels: List[int] = checked([32, 64], each(at_least(1)))
    layers_per_block: int = checked(1, at_least(1))
    attention_head_dim: int = checked(8, at_least(1))
    cross_attention_dim: int = checked(32, at_least(1))
    context_tokens: int = checked(4, at_least(1))
    encoder_channels: int = checked(48, at_least(1))
    encoder_blocks: int = checked(2, NON_NEGATIVE)
    decoder_channels: int = checked(32, at_least(1))
    decoder_blocks: int = checked(2, NON_NEGATIVE)
    # sd21 preset: entries replacing the SD 2.1-base diffusers configs (models/backbone/sd21.py)
    sd21_unet: Dict[str, Any] = field(default_factory=dict)
    sd21_vae: Dict[str, Any] = field(default_factory=dict)
    sd21_text_encoder: Dict[str, Any] = field(default_factory=dict)
    # sd21: run a text encoder on the empty prompt at every call (the unpruned pipeline); when
    # false the context is read from `prompt_embedding` (default <pretrained_path>/prompt_embedding.safetensors)
    text_encoder: bool = False
    prompt_embedding: Optional[str] = None
    # memory levers for paper-scale training: recompute UNet / VAE block activations in the
    # backward pass instead of storing them; LoRA adapters instead of full fine-tuning
    gradient_checkpointing: bool = False
    lora: LoraConfig = field(default_factory=LoraConfig)


@dataclass
class RecurrentConfig:
    """Frame t sees the previous output warped to t (`enabled`)."""

    enabled: bool = True
    init_state: str = one_of("bicubic", "bicubic", "zeros")
    tbptt: int = checked(0, NON_NEGATIVE)


@dataclass
class FlowConfig:
    """Flow used to align the previous output inside the generator, in training, validation, test
    and inference: estimated on the LR frames (`dis` by default), as a real video allows; `gt`,
    the sample clips' exact flow, is an oracle (ablations/oracle_flow.yaml). RAFT reads a local
    weights file."""

    estimator: str = registered("dis", reg.FLOW_ESTIMATORS)
    raft_weights: Optional[str] = None
    raft_size: str = one_of("small", "small", "large")


@dataclass
class PruningConfig:
    """Ordered list of pruning stages applied to the backbone."""

    stages: List[str] = registered([], reg.PRUNING_STAGES, each=True)
    unet_ratio: float = checked(0.5, between(0, 1, low_open=True))  # unet_channels: share of ResNet hidden channels / feed-forward units kept
    decoder_ratio: float = checked(0.25, between(0, 1, low_open=True))  # decoder_channels: share of every VAE decoder width kept
    encoder_ratio: float = checked(0.5, between(0, 1, low_open=True))  # encoder_channels: share of every ResStack encoder width kept
    # how channel stages rank channels: data-free `weight_norm`, or `activation` / `taylor` on
    # `calibration_clips` training clips (used when the pruned weights are real: a teacher or
    # pretrained_path; random weights are pruned by weight_norm, their shapes being all that matters)
    importance: str = registered("weight_norm", reg.CHANNEL_IMPORTANCE)
    calibration_clips: int = checked(8, POSITIVE)


@dataclass
class RecoveryConfig:
    """How a student cut from a teacher trains: as a fine-tuning of trained weights, not a fresh
    training run (whose full learning rate knocks a converged model off its optimum). The
    generator trains at `optim.lr * lr_ratio` (0.1 by default: the rate the default cosine ends
    its training on), after a linear warm-up over the first `warmup` share of trainer.max_batches,
    then `optim.scheduler` over the rest. With `critics_from_teacher` each critic whose
    architecture matches the teacher checkpoint's starts from its weights and also trains at
    `lr_ratio` times its rate; a critic the teacher lacks starts fresh at its own rate.
    `lr_ratio: 1`, `warmup: 0` and `critics_from_teacher: false` train the student as a plain fit."""

    lr_ratio: float = checked(0.1, POSITIVE)
    warmup: float = checked(0.1, between(0, 1, high_open=True))  # share of the recovery's batches
    critics_from_teacher: bool = True


@dataclass
class TeacherConfig:
    """Teacher-student recovery after pruning (AdcSR-style distillation). `ckpt` (a vsr_lab
    checkpoint) and/or `config` (a config file, e.g. the unpruned preset with pretrained_path; it
    wins over the checkpoint's saved config) give a frozen teacher that runs without gradients in
    its own recurrence; it is never saved in the student's checkpoints. The student is the teacher
    pruned by the student's stages that the teacher has not applied (its kept weights and channels).
    Distillation weights (0 = off): L1 to the teacher's output frames (`pixel_weight`) and x0
    latents (`latent_weight`), and L1 between UNet block outputs (`feature_weight`; a learned 1x1
    projection where widths differ). GT and adversarial losses stay as configured; the optimizers
    follow `recovery`."""

    ckpt: Optional[str] = None
    config: Optional[str] = None
    pixel_weight: float = checked(1.0, NON_NEGATIVE)
    latent_weight: float = checked(0.0, NON_NEGATIVE)
    feature_weight: float = checked(0.0, NON_NEGATIVE)
    recovery: RecoveryConfig = field(default_factory=RecoveryConfig)


@dataclass
class EMAConfig:
    """Exponential moving average of the model's weights (Lightning's EMAWeightAveraging): validation
    and checkpoints use the average; checkpoints also keep the raw weights, which resuming restores.
    Updated once per batch from batch `start_batch` on: ema = decay * ema + (1 - decay) * raw."""

    enabled: bool = False
    decay: float = checked(0.999, between(0, 1, high_open=True))
    start_batch: int = checked(0, NON_NEGATIVE)


@dataclass
class ModelConfig:
    backbone: BackboneConfig = field(default_factory=BackboneConfig)
    recurrent: RecurrentConfig = field(default_factory=RecurrentConfig)
    flow: FlowConfig = field(default_factory=FlowConfig)
    pruning: PruningConfig = field(default_factory=PruningConfig)
    teacher: TeacherConfig = field(default_factory=TeacherConfig)
    ema: EMAConfig = field(default_factory=EMAConfig)


@dataclass
class ReconstructionLossConfig:
    enabled: bool = True
    weight: float = checked(1.0, NON_NEGATIVE)
    type: str = registered("charbonnier", reg.RECONSTRUCTION_LOSSES)
    eps: float = checked(1e-3, POSITIVE)


@dataclass
class TemporalLossConfig:
    """Occlusion-masked L1 between output t and output t-1 warped to t.

    `flow`: `gt` (dataset flow and mask), `estimator` (model.flow.estimator on the GT frames,
    forward-backward occlusion test) or `auto` (the dataset's flow when it has one, else the
    estimator: training may use the GT, so this is no oracle at test time); `relative_to_gt`: penalise only the part of the change that
    the GT frames do not have; `warmup_batches`: the weight ramps up linearly over these batches;
    `change_weight`: the weight of a second term, |the output's mean frame-to-frame change minus the
    GT's| (the `flicker` metric as a loss; 0: off), under the same switch and warm-up;
    `difference_weight`: the weight of a third term, per-pixel L1 between the output's and the GT's
    frame-to-frame differences (no flow; 0: off), under the same switch and warm-up.
    """

    enabled: bool = True
    weight: float = checked(0.2, NON_NEGATIVE)  # negative would reward flicker
    flow: str = one_of("auto", "auto", "gt", "estimator")
    relative_to_gt: bool = False
    warmup_batches: int = checked(0, NON_NEGATIVE)
    change_weight: float = checked(0.0, NON_NEGATIVE)
    difference_weight: float = checked(0.0, NON_NEGATIVE)


@dataclass
class AdversarialLossConfig:
    """Generator-side weight of one adversarial space; disabled means no discriminator at all."""

    enabled: bool = True
    weight: float = checked(0.01, NON_NEGATIVE)


@dataclass
class PerceptualLossConfig:
    """LPIPS or DISTS between output and GT frames, through pyiqa's loss mode. `weights`: a folder
    in the layout of `metrics.weights_dir` (null: `metrics.weights_dir`); nothing is downloaded."""

    enabled: bool = False
    type: str = registered("lpips", reg.PERCEPTUAL_LOSSES)
    weight: float = checked(0.1, NON_NEGATIVE)
    weights: Optional[str] = None


@dataclass
class LossConfig:
    reconstruction: ReconstructionLossConfig = field(default_factory=ReconstructionLossConfig)
    temporal: TemporalLossConfig = field(default_factory=TemporalLossConfig)
    adversarial_latent: AdversarialLossConfig = field(default_factory=AdversarialLossConfig)
    adversarial_pixel: AdversarialLossConfig = field(default_factory=AdversarialLossConfig)
    perceptual: PerceptualLossConfig = field(default_factory=PerceptualLossConfig)


@dataclass
class DiscriminatorConfig:
    """One discriminator: a patch critic on latents or on RGB frames."""

    channels: int = checked(32, at_least(1))
    num_layers: int = checked(3, between(1, 12))  # each layer after the first halves the input side
    norm: str = one_of("spectral", "spectral", "none")
    loss_type: str = registered("hinge", reg.ADVERSARIAL_LOSSES)
    r1_weight: float = checked(0.0, NON_NEGATIVE)
    lr: float = checked(2e-4, POSITIVE)
    start_batch: int = checked(0, NON_NEGATIVE)


@dataclass
class DiscriminatorsConfig:
    latent: DiscriminatorConfig = field(default_factory=DiscriminatorConfig)
    pixel: DiscriminatorConfig = field(default_factory=DiscriminatorConfig)


@dataclass
class OptimConfig:
    """Generator optimizer and the schedule shared by all optimizers."""

    lr: float = checked(1e-3, POSITIVE)
    betas: List[float] = checked([0.9, 0.99], each(between(0, 1, high_open=True), length=2))  # Adam's
    weight_decay: float = checked(0.0, NON_NEGATIVE)
    scheduler: str = registered("cosine", reg.LR_SCHEDULES)
    min_lr_ratio: float = checked(0.1, FRACTION)
    grad_clip: float = checked(1.0, NON_NEGATIVE)  # 0: no clipping


@dataclass
class TrainerConfig:
    """Lightning Trainer settings; training length is counted in batches, not optimizer steps."""

    accelerator: str = "auto"
    devices: Any = checked(1, DEVICES)
    num_nodes: int = checked(1, at_least(1))
    strategy: str = "auto"
    # what Lightning's Trainer(precision=...) takes (a YAML 16 or 32 arrives here as "16", "32")
    precision: str = one_of("32-true", "32-true", "64-true", "16-mixed", "bf16-mixed", "16-true", "bf16-true",
                            "transformer-engine", "transformer-engine-float16", "64", "32", "16", "bf16")
    max_batches: int = checked(600, at_least(1))
    val_every: int = checked(200, at_least(1))
    log_every: int = checked(10, at_least(1))
    deterministic: bool = False
    progress_bar: bool = True
    # which checkpoints the run folder keeps: `best_and_last` (best.ckpt by val/psnr, last.ckpt to
    # resume), `last` (what a resume needs: for sweep trials and ablation cells), `none`
    checkpoints: str = one_of("best_and_last", "best_and_last", "last", "none")


@dataclass
class TrackingConfig:
    """MLflow: always a sqlite:/// (or server) URI, never the plain file store."""

    enabled: bool = True
    tracking_uri: str = "sqlite:///mlflow.db"
    artifact_location: str = "mlartifacts"  # local folder; with a tracking server, the server's store unless a URI
    experiment: str = "vsr_lab"
    run_name: Optional[str] = None
    log_images: int = checked(2, NON_NEGATIVE)
    # best/last checkpoints live in the run folder; MLflow gets `reference` (their paths and sizes,
    # checkpoints.json), `copy` (the files as artifacts: hard links on a local artifact store, an
    # upload to a server's) or `none`
    log_checkpoints: str = one_of("reference", "reference", "copy", "none")


@dataclass
class MetricsConfig:
    """Validation / test metrics. E*warp's flow (`ewarp_flow`): `gt`, the motion of the GT clip
    (exact when the dataset has it, else `ewarp_estimator` on the GT frames with the
    forward-backward test), the same for every method, as `evaluate` does; or `pred`,
    `ewarp_estimator` on each scored clip."""

    ewarp_flow: str = one_of("gt", "gt", "pred")
    ewarp_estimator: str = one_of("farneback", "farneback", "dis", "raft")
    crop_border: int = checked(0, NON_NEGATIVE)
    lpips_weights: Optional[str] = None  # torchvision ImageNet weights of the LPIPS backbone (tLP)
    lpips_net: str = one_of("alex", "alex", "vgg")
    # Perceptual metrics (pyiqa names, or niqe_local), logged as val/<name> and test/<name> with the
    # bicubic baseline. The default two need no weight file (docs/perceptual.md).
    perceptual: List[str] = registered(["piqe", "niqe_local"], reg.PERCEPTUAL_METRICS, each=True)
    weights_dir: Optional[str] = None  # torch-hub-style folder: pyiqa/, checkpoints/, clip/
    pretrained: Dict[str, str] = field(default_factory=dict)  # metric -> its own file (niqe_local: a niqe-fit output)
    cache_dir: Optional[str] = None  # the built-in niqe_local fit (default ~/.cache/vsr_lab)
    batch_size: int = checked(8, at_least(1))  # frames per call of a perceptual metric


@dataclass
class SweepParamConfig:
    """One searched config key: `float`/`int` in [low, high] (optionally `log`, `step`) or `categorical`."""

    type: str = "float"
    low: Optional[float] = checked(None, FINITE)  # low < high: studies/search_space.py
    high: Optional[float] = checked(None, FINITE)
    log: bool = False
    step: Optional[float] = checked(None, POSITIVE)
    choices: Optional[List[Any]] = None


@dataclass
class SweepConfig:
    """Optuna study: `params` maps dotted config keys to distributions; one direction per objective.

    Pruning needs a single objective: a pruner other than `none` with several objectives is an error. A worker's
    trial left RUNNING without a heartbeat for `grace_period` seconds is failed and retried.
    `seed` makes a one-worker study reproducible; leave it null for several workers, which would
    otherwise draw the same samples.
    """

    objectives: List[str] = field(default_factory=lambda: ["val/psnr"])
    directions: List[str] = field(default_factory=lambda: ["maximize"])
    sampler: str = registered("tpe", reg.STUDY_SAMPLERS)
    pruner: str = registered("median", reg.STUDY_PRUNERS)
    pruner_warmup_batches: int = checked(0, NON_NEGATIVE)
    seed: Optional[int] = checked(None, SEED)
    heartbeat_interval: int = checked(30, at_least(1))  # seconds
    grace_period: int = checked(120, at_least(1))  # seconds; > heartbeat_interval (config/rules.py)
    params: Dict[str, SweepParamConfig] = field(default_factory=dict)


@dataclass
class VSRConfig:
    seed: int = checked(0, SEED)
    output_dir: str = "runs"
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    discriminator: DiscriminatorsConfig = field(default_factory=DiscriminatorsConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    sweep: SweepConfig = field(default_factory=SweepConfig)
