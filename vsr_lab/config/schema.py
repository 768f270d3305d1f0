"""Typed schema of every vsr_lab setting, with the tiny CPU defaults.

OmegaConf checks each YAML file and each command-line override against these dataclasses, so an
unknown key or a wrong type is caught before anything runs. Every component of the method has its
switch here: an ablation is a YAML file that flips one of them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from vsr_lab import registry as reg


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

    max_shift: float = 2.0
    max_zoom: float = 0.02
    max_rotation_deg: float = 1.0


@dataclass
class SharpenConfig:
    """Unsharp-masked training targets (Real-ESRGAN's USM): training GT only, LR from the plain GT."""

    enabled: bool = False
    weight: float = 0.5
    kernel_size: int = 51
    threshold: float = 10.0  # 8-bit levels


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
    drawn per clip from `frame_intervals`."""

    hflip: bool = True
    vflip: bool = False
    reverse: bool = False
    frame_intervals: List[int] = field(default_factory=lambda: [1])


@dataclass
class DataConfig:
    """Where clips come from (`source`, a registry entry): `synthetic` (built-in sample clips with
    exact flow), `photos` (your photos as moving-camera clips with exact flow), `folder`, `reds`,
    `vimeo90k` (real clips). Each split reads its own root; `test` is held out from both others.
    """

    source: str = registered("synthetic", reg.DATA_SOURCES)
    scale: int = 4
    num_frames: int = 5
    hr_size: int = 64
    batch_size: int = 4
    num_workers: int = 0
    train_clips: int = 100_000
    val_clips: int = 4
    val_frames: int = 8
    val_hr_size: int = 96
    seed: int = 0
    min_detail: float = 0.004  # synthetic clips: redraw windows flatter than this (mean |GT - bicubic|)
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
    rank: int = 4
    alpha: float = 4.0
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
    timestep: int = 100
    prediction_type: str = one_of("epsilon", "epsilon", "v_prediction")
    block_out_channels: List[int] = field(default_factory=lambda: [32, 64])
    layers_per_block: int = 1
    attention_head_dim: int = 8
    cross_attention_dim: int = 32
    context_tokens: int = 4
    encoder_channels: int = 48
    encoder_blocks: int = 2
    decoder_channels: int = 32
    decoder_blocks: int = 2
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
    tbptt: int = 0


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
    unet_ratio: float = 0.5      # unet_channels: share of ResNet hidden channels / feed-forward units kept
    decoder_ratio: float = 0.25  # decoder_channels: share of every VAE decoder width kept


@dataclass
class EMAConfig:
    """Exponential moving average of the model's weights (Lightning's EMAWeightAveraging): validation
    and checkpoints use the average; checkpoints also keep the raw weights, which resuming restores.
    Updated once per batch from batch `start_batch` on: ema = decay * ema + (1 - decay) * raw."""

    enabled: bool = False
    decay: float = 0.999
    start_batch: int = 0


@dataclass
class ModelConfig:
    backbone: BackboneConfig = field(default_factory=BackboneConfig)
    recurrent: RecurrentConfig = field(default_factory=RecurrentConfig)
    flow: FlowConfig = field(default_factory=FlowConfig)
    pruning: PruningConfig = field(default_factory=PruningConfig)
    ema: EMAConfig = field(default_factory=EMAConfig)


@dataclass
class ReconstructionLossConfig:
    enabled: bool = True
    weight: float = 1.0
    type: str = registered("charbonnier", reg.RECONSTRUCTION_LOSSES)
    eps: float = 1e-3


@dataclass
class TemporalLossConfig:
    """Occlusion-masked L1 between output t and output t-1 warped to t.

    `flow`: `gt` (dataset flow and mask), `estimator` (model.flow.estimator on the GT frames,
    forward-backward occlusion test) or `auto` (the dataset's flow when it has one, else the
    estimator: training may use the GT, so this is no oracle at test time); `relative_to_gt`: penalise only the part of the change that
    the GT frames do not have; `warmup_batches`: the weight ramps up linearly over these batches.
    """

    enabled: bool = True
    weight: float = 0.2
    flow: str = one_of("auto", "auto", "gt", "estimator")
    relative_to_gt: bool = False
    warmup_batches: int = 0


@dataclass
class AdversarialLossConfig:
    """Generator-side weight of one adversarial space; disabled means no discriminator at all."""

    enabled: bool = True
    weight: float = 0.01


@dataclass
class PerceptualLossConfig:
    """LPIPS or DISTS between output and GT frames, through pyiqa's loss mode. `weights`: a folder
    in the layout of `metrics.weights_dir` (null: `metrics.weights_dir`); nothing is downloaded."""

    enabled: bool = False
    type: str = registered("lpips", reg.PERCEPTUAL_LOSSES)
    weight: float = 0.1
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

    channels: int = 32
    num_layers: int = 3
    norm: str = one_of("spectral", "spectral", "none")
    loss_type: str = registered("hinge", reg.ADVERSARIAL_LOSSES)
    r1_weight: float = 0.0
    lr: float = 2e-4
    start_batch: int = 0


@dataclass
class DiscriminatorsConfig:
    latent: DiscriminatorConfig = field(default_factory=DiscriminatorConfig)
    pixel: DiscriminatorConfig = field(default_factory=DiscriminatorConfig)


@dataclass
class OptimConfig:
    """Generator optimizer and the schedule shared by all optimizers."""

    lr: float = 1e-3
    betas: List[float] = field(default_factory=lambda: [0.9, 0.99])
    weight_decay: float = 0.0
    scheduler: str = registered("cosine", reg.LR_SCHEDULES)
    min_lr_ratio: float = 0.1
    grad_clip: float = 1.0


@dataclass
class TrainerConfig:
    """Lightning Trainer settings; training length is counted in batches, not optimizer steps."""

    accelerator: str = "auto"
    devices: Any = 1
    num_nodes: int = 1
    strategy: str = "auto"
    precision: str = "32-true"
    max_batches: int = 600
    val_every: int = 200
    log_every: int = 10
    deterministic: bool = False
    progress_bar: bool = True


@dataclass
class TrackingConfig:
    """MLflow: always a sqlite:/// (or server) URI, never the plain file store."""

    enabled: bool = True
    tracking_uri: str = "sqlite:///mlflow.db"
    artifact_location: str = "mlartifacts"  # local folder; with a tracking server, the server's store unless a URI
    experiment: str = "vsr_lab"
    run_name: Optional[str] = None
    log_images: int = 2
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
    crop_border: int = 0
    lpips_weights: Optional[str] = None  # torchvision ImageNet weights of the LPIPS backbone (tLP)
    lpips_net: str = one_of("alex", "alex", "vgg")
    # Perceptual metrics (pyiqa names, or niqe_local), logged as val/<name> and test/<name> with the
    # bicubic baseline. The default two need no weight file (README, "Perceptual quality").
    perceptual: List[str] = registered(["piqe", "niqe_local"], reg.PERCEPTUAL_METRICS, each=True)
    weights_dir: Optional[str] = None  # torch-hub-style folder: pyiqa/, checkpoints/, clip/
    pretrained: Dict[str, str] = field(default_factory=dict)  # metric -> its own file (niqe_local: a niqe-fit output)
    cache_dir: Optional[str] = None  # the built-in niqe_local fit (default ~/.cache/vsr_lab)
    batch_size: int = 8  # frames per call of a perceptual metric


@dataclass
class SweepParamConfig:
    """One searched config key: `float`/`int` in [low, high] (optionally `log`, `step`) or `categorical`."""

    type: str = "float"
    low: Optional[float] = None
    high: Optional[float] = None
    log: bool = False
    step: Optional[float] = None
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
    pruner_warmup_batches: int = 0
    seed: Optional[int] = None
    heartbeat_interval: int = 30
    grace_period: int = 120
    params: Dict[str, SweepParamConfig] = field(default_factory=dict)


@dataclass
class VSRConfig:
    seed: int = 0
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
