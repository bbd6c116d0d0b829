"""The training config: paper defaults, YAML + overrides, clear refusals, round trip, shipped examples."""

from __future__ import annotations

from pathlib import Path

import pytest

from skinattn.training.config import (
    ConfigError,
    TrainConfig,
    apply_overrides,
    config_differences,
    load_config,
    save_config,
)

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


def test_defaults_are_the_papers() -> None:
    config = TrainConfig()
    assert (config.optim.lr, config.optim.eps, config.optim.scheduler) == (0.01, 0.1, "none")
    assert config.train.batch_size == 16
    assert config.train.monitor == "val_loss"
    assert config.loss.class_weights == {} and config.loss.label_smoothing == 0.0
    assert (config.augment.rotation, config.augment.shift, config.augment.zoom) == (180.0, 0.1, 0.1)
    assert config.augment.hflip and config.augment.vflip and config.augment.color_jitter == 0.0
    assert config.model.arch == "inception_resnet_v2" and config.model.soft_attention


def test_yaml_and_overrides_are_typed(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("model:\n  arch: resnet18\ntrain:\n  epochs: 7\n", encoding="utf-8")
    config = load_config(
        path,
        ["optim.lr=1e-3", "loss.class_weights={mel: 5}", "train.monitor=macro_auc", "model.pretrained=false",
         "model.img_size=64", "optim.betas=[0.8, 0.9]"],
    )
    assert config.model.arch == "resnet18" and config.train.epochs == 7
    assert config.optim.lr == 0.001 and isinstance(config.optim.lr, float)
    assert config.loss.class_weights == {"mel": 5.0}
    assert config.train.monitor == "macro_auc"
    assert config.model.pretrained is False and config.model.img_size == 64
    assert config.optim.betas == (0.8, 0.9)
    # A string path is also a valid 'pretrained'.
    assert load_config(None, ["model.pretrained=/weights/irv2.safetensors"]).model.pretrained == "/weights/irv2.safetensors"


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("optim.learning_rate=0.1", "unknown key(s) ['optim.learning_rate']"),
        ("train.epochs=many", "train.epochs must be int"),
        ("train.batch_size=0", "train.batch_size must be at least 1"),
        ("train.monitor=accuracy", "train.monitor must be one of"),
        ("loss.label_smoothing=1.5", "loss.label_smoothing must be in [0, 1)"),
        ("loss.class_weights={mel: -1}", "loss.class_weights must be positive"),
        ("data.balance=smote", "data.balance must be one of"),
        ("epochs", "must look like section.field=value"),
    ],
)
def test_bad_values_are_refused_with_the_key_named(override: str, message: str) -> None:
    with pytest.raises(ConfigError) as error:
        load_config(None, [override])
    assert message in str(error.value)


def test_errors_name_the_file(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("train:\n  epoch: 3\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"bad\.yaml: unknown key\(s\) \['train\.epoch'\]"):
        load_config(path)
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "missing.yaml")
    path.write_text("- a list\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="top level must be a mapping"):
        load_config(path)


def test_saved_config_loads_back_identical(tmp_path: Path) -> None:
    config = load_config(None, ["loss.class_weights={mel: 5}", "train.channels_last=true", "data.num_workers=3"])
    save_config(config, tmp_path / "config.yaml")
    again = load_config(tmp_path / "config.yaml")
    assert again == config
    assert config_differences(config, again) == []
    changed = load_config(tmp_path / "config.yaml", ["optim.lr=0.5", "loss.class_weights={mel: 2}"])
    assert config_differences(config, changed) == ["loss.class_weights", "optim.lr"]


def test_overrides_do_not_touch_the_input() -> None:
    data = {"train": {"epochs": 2}}
    assert apply_overrides(data, ["train.epochs=5"]) == {"train": {"epochs": 5}}
    assert data == {"train": {"epochs": 2}}


@pytest.mark.parametrize("path", sorted(CONFIGS.glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_example_configs_are_valid(path: Path) -> None:
    config = load_config(path)
    assert config.data.prepared, f"{path.name} should say where the prepared data is"
