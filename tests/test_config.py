"""Config loading: extends chains, overrides, and errors that name the key and the file."""

from __future__ import annotations

from pathlib import Path

import pytest

from vsr_lab.config import flatten, load_config, to_yaml
from vsr_lab.errors import UserError

from helpers.common import REPO


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_defaults_are_the_tiny_cpu_setup():
    cfg = load_config(None)
    assert cfg.model.backbone.preset == "tiny"
    assert cfg.tracking.tracking_uri.startswith("sqlite:///")
    assert cfg.trainer.max_batches % cfg.trainer.val_every == 0


def test_extends_chain_relative_paths_and_override_order(tmp_path):
    write(tmp_path / "base" / "root.yaml", "seed: 1\ndata: {batch_size: 8, scale: 4}\n")
    write(tmp_path / "mid" / "mid.yaml", "extends: ../base/root.yaml\ndata: {batch_size: 6}\nseed: 2\n")
    leaf = write(tmp_path / "leaf.yaml", "extends: mid/mid.yaml\nseed: 3\n")
    cfg = load_config(leaf)
    assert (cfg.seed, cfg.data.batch_size, cfg.data.scale) == (3, 6, 4)
    cfg = load_config(leaf, ["data.batch_size=2", "loss.temporal.weight=0.5"])
    assert cfg.data.batch_size == 2 and cfg.loss.temporal.weight == 0.5


def test_unknown_key_in_parent_file_names_that_file_and_key(tmp_path):
    write(tmp_path / "parent.yaml", "loss:\n  temporal:\n    wieght: 2\n")
    child = write(tmp_path / "child.yaml", "extends: parent.yaml\n")
    with pytest.raises(UserError) as err:
        load_config(child)
    msg = str(err.value)
    assert "parent.yaml" in msg and "loss.temporal.wieght" in msg and "\n" not in msg


@pytest.mark.parametrize("override, key", [
    ("loss.temporall.weight=1", "loss.temporall"),
    ("trainer.max_batches=many", "trainer.max_batches"),
    ("model.recurrent.enabled=perhaps", "model.recurrent.enabled"),
    ("model.backbone.preset=huge", "model.backbone.preset"),
])
def test_bad_override_names_the_key(override, key):
    with pytest.raises(UserError, match=key.replace(".", r"\.")):
        load_config(REPO / "ablations" / "full.yaml", [override])


def test_missing_file_cycle_and_non_mapping(tmp_path):
    with pytest.raises(UserError, match="not found: .*nope.yaml"):
        load_config(tmp_path / "nope.yaml")
    write(tmp_path / "a.yaml", "extends: b.yaml\n")
    write(tmp_path / "b.yaml", "extends: a.yaml\n")
    with pytest.raises(UserError, match="cycle"):
        load_config(tmp_path / "a.yaml")
    with pytest.raises(UserError, match="mapping"):
        load_config(write(tmp_path / "list.yaml", "- 1\n- 2\n"))
    with pytest.raises(UserError, match="key=value"):
        load_config(None, ["justakey"])


def test_every_shipped_config_loads_and_ablations_change_one_thing():
    reference = flatten(load_config(REPO / "experiments" / "instavsr_tiny.yaml"))
    expected = {
        "full.yaml": set(),
        "no_pixel_gan.yaml": {"loss.adversarial_pixel.enabled"},
        "no_latent_gan.yaml": {"loss.adversarial_latent.enabled"},
        "no_gan.yaml": {"loss.adversarial_latent.enabled", "loss.adversarial_pixel.enabled"},
        "no_flow_reg.yaml": {"loss.temporal.enabled"},
        "no_recurrence.yaml": {"model.recurrent.enabled"},
        "oracle_flow.yaml": {"model.flow.estimator"},
    }
    for name, keys in expected.items():
        flat = flatten(load_config(REPO / "ablations" / name))
        changed = {k for k in flat if flat[k] != reference[k]}
        assert changed == keys, name


def test_resolved_yaml_round_trips(tmp_path):
    cfg = load_config(REPO / "ablations" / "no_gan.yaml", ["seed=7"])
    again = load_config(write(tmp_path / "resolved.yaml", to_yaml(cfg)))
    assert flatten(again) == flatten(cfg)


def test_choice_lists_come_from_the_registries():
    """Every name-valued key lists exactly what has registered itself; a new entry is a valid
    choice with no edit to the config code (adding one is one file plus its test)."""
    from vsr_lab import registry
    from vsr_lab.config.loading import allowed_choices, choice_fields
    from vsr_lab.errors import UserError

    fields = choice_fields()
    assert allowed_choices(fields["model.flow.estimator"]) == registry.FLOW_ESTIMATORS.names()
    assert set(registry.FLOW_ESTIMATORS.names()) == {"gt", "farneback", "dis", "raft"}
    assert set(allowed_choices(fields["model.pruning.stages"])) == {
        "text_encoder", "time_embedding", "cross_attention", "vae_encoder", "unet_channels", "decoder_channels",
        "attention_blocks", "encoder_channels"}
    assert allowed_choices(fields["model.pruning.importance"]) == registry.CHANNEL_IMPORTANCE.names()
    assert set(allowed_choices(fields["model.backbone.preset"])) == {"tiny", "sd21"}
    assert set(allowed_choices(fields["data.source"])) == {"synthetic", "folder", "photos", "reds", "vimeo90k"}
    assert set(allowed_choices(fields["data.degradation.type"])) == {"bicubic", "realbasicvsr", "light", "pipeline",
                                                                            "video"}
    assert set(registry.DEGRADATION_STAGES.names()) == {"blur", "resize", "final_resize", "noise", "jpeg",
                                                         "video_codec"}
    assert "model.residual" not in fields  # dead key removed
    with pytest.raises(UserError, match="key 'model.flow.estimator' must be one of gt, .*; got 'mine'"):
        load_config(None, ["model.flow.estimator=mine"])
    registry.FLOW_ESTIMATORS.register("mine")(object)
    try:
        assert load_config(None, ["model.flow.estimator=mine"]).model.flow.estimator == "mine"
    finally:
        registry.FLOW_ESTIMATORS._entries.pop("mine")


def test_realworld_ablations_change_only_their_stages():
    reference = flatten(load_config(REPO / "experiments" / "instavsr_tiny_realworld.yaml"))
    assert reference["data.degradation.type"] == "video" and reference["model.flow.estimator"] == "dis"
    stages = "data.degradation.stages"
    expected = {
        "full.yaml": set(),
        "no_codec.yaml": {f"{stages}.codec.enabled"},
        "no_noise.yaml": {f"{stages}.noise.enabled"},
        "no_blur.yaml": {f"{stages}.blur.enabled"},
        "codec_on_the_crop.yaml": {"data.degrade_size"},
        "light_preset.yaml": {"data.degradation.type"},
        "bicubic_only.yaml": {"data.degradation.type"},
        "frame_change.yaml": {"loss.temporal.change_weight"},
    }
    assert {p.name for p in (REPO / "ablations" / "realworld").glob("*.yaml")} == set(expected)
    for name, keys in expected.items():
        flat = flatten(load_config(REPO / "ablations" / "realworld" / name))
        changed = {k for k in set(flat) | set(reference) if flat.get(k) != reference.get(k)}
        assert changed == keys, name
