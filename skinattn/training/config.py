"""The training configuration: one typed object, read from YAML, overridden from the command line, saved
with the run.

Sections (every field has a default; the defaults are the paper's where the paper says something):

``data``     where the prepared data set is and how it is fed (balancing, cache, workers)
``model``    which network ``skinattn.models.create_model`` builds
``optim``    Adam and the optional learning-rate schedule
``loss``     cross-entropy options: class weights, label smoothing
``augment``  online augmentation of training images
``train``    epochs, batch size, early stopping, seed, device and speed switches

Overrides are ``section.field=value`` strings (``--set optim.lr=0.001``); values are parsed as YAML, so
``loss.class_weights={mel: 5}`` and ``model.pretrained=false`` work. Unknown keys and values of the wrong
type are refused with the key (and the file) named.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

from skinattn.errors import SkinattnError
from skinattn.fileio import atomic_open

MONITORS: tuple[str, ...] = ("val_loss", "balanced_accuracy", "macro_auc")
BALANCE_MODES: tuple[str, ...] = ("index", "sampler", "none")
CACHE_MODES: tuple[str, ...] = ("build", "auto", "decode")
SCHEDULERS: tuple[str, ...] = ("none", "plateau", "cosine")
DEVICES: tuple[str, ...] = ("auto", "cpu", "cuda")
PRECISIONS: tuple[str, ...] = ("auto", "bf16", "fp32")


class ConfigError(SkinattnError):
    """A training configuration is unreadable or has an unknown key or a bad value."""


@dataclasses.dataclass
class DataConfig:
    """``prepared``: the folder written by ``skinattn prepare`` (manifest.csv with a split column,
    train_balanced.csv, optionally cache/). Only its train and val splits are read; test never is.

    ``balance``: ``index`` repeats each training image as often as train_balanced.csv says, with fresh
    augmentation on every repeat (the paper's oversampling, done online); ``sampler`` draws the plain
    training split class-balanced with replacement; ``none`` uses the plain training split.
    ``cache``: ``build`` reads resized images from the prepare cache, building it when missing; ``auto``
    uses it only when present; ``decode`` decodes every image every epoch (no cache). ``cache_dir`` defaults to
    ``<prepared>/cache``. ``num_workers``: DataLoader worker processes (None: 0 on CPU, up to 8 on CUDA).
    """

    prepared: str = ""
    balance: str = "index"
    cache: str = "build"
    cache_dir: str | None = None
    num_workers: int | None = None


@dataclasses.dataclass
class ModelSection:
    """Arguments of ``skinattn.models.create_model``. ``pretrained``: false, true (timm hub; needs internet)
    or the path of a local timm weights file. ``img_size`` None means the architecture's own input size."""

    arch: str = "inception_resnet_v2"
    soft_attention: bool = True
    pretrained: bool | str = False
    img_size: int | None = None
    dropout: float = 0.5
    heads: int = 16
    gamma_init: float = 0.01
    relu_logits: bool = False


@dataclasses.dataclass
class OptimConfig:
    """Adam; the paper's lr=0.01 and eps=0.1. ``scheduler``: none (the paper), plateau
    (ReduceLROnPlateau on the monitored metric) or cosine (over ``train.epochs``)."""

    lr: float = 0.01
    eps: float = 0.1
    betas: tuple[float, float] = (0.9, 0.999)
    weight_decay: float = 0.0
    scheduler: str = "none"
    plateau_factor: float = 0.5
    plateau_patience: int = 10
    min_lr: float = 0.0


@dataclasses.dataclass
class LossConfig:
    """Cross-entropy. ``class_weights`` maps class codes to weights (others weigh 1); the authors' notebooks
    used ``{mel: 5}``, the paper mentions none."""

    class_weights: dict[str, float] = dataclasses.field(default_factory=dict)
    label_smoothing: float = 0.0


@dataclasses.dataclass
class AugmentConfig:
    """Online augmentation of training images (the authors' offline set: rotation 180°, shifts 0.1,
    zoom 0.1, both flips). ``color_jitter`` is the brightness/contrast/saturation strength (0 = off)."""

    enabled: bool = True
    rotation: float = 180.0
    shift: float = 0.1
    zoom: float = 0.1
    hflip: bool = True
    vflip: bool = True
    color_jitter: float = 0.0


@dataclasses.dataclass
class TrainSection:
    """The loop. ``epochs`` is the maximum; training stops earlier when ``monitor`` (on the validation
    split) has not improved by ``min_delta`` for ``patience`` epochs. The best epoch by ``monitor`` is the
    saved model. ``device``: auto (CUDA when available), cpu, cuda. ``precision``: auto (bf16 autocast on
    CUDA, fp32 on CPU), bf16, fp32. ``channels_last``: None = on for CUDA. ``tensorboard``: also write
    TensorBoard event files to ``<out_dir>/tensorboard/`` (needs the ``tensorboard`` extra; see
    ``skinattn.training.tensorboard_log``). ``threads``: ``torch.set_num_threads`` for the run (None = torch's
    default, one per core; fewer is often faster on a machine other work shares). ``calibrate``: once training
    ends, fit a temperature on the validation split's logits of the best model and store it in the card
    (applied by every prediction path; see ``skinattn.evaluation.calibration``)."""

    epochs: int = 150
    batch_size: int = 16
    eval_batch_size: int = 64
    patience: int = 30
    min_delta: float = 0.0
    monitor: str = "val_loss"
    seed: int = 0
    deterministic: bool = True
    device: str = "auto"
    precision: str = "auto"
    channels_last: bool | None = None
    compile: bool = False
    progress: bool = True
    tensorboard: bool = False
    threads: int | None = None
    calibrate: bool = True


@dataclasses.dataclass
class TrainConfig:
    """Everything one training run needs; ``out_dir`` is where it writes (see ``skinattn.training.trainer``)."""

    out_dir: str = "runs/train"
    data: DataConfig = dataclasses.field(default_factory=DataConfig)
    model: ModelSection = dataclasses.field(default_factory=ModelSection)
    optim: OptimConfig = dataclasses.field(default_factory=OptimConfig)
    loss: LossConfig = dataclasses.field(default_factory=LossConfig)
    augment: AugmentConfig = dataclasses.field(default_factory=AugmentConfig)
    train: TrainSection = dataclasses.field(default_factory=TrainSection)

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Check values that a type alone cannot (choices, ranges)."""
        _choice("data.balance", self.data.balance, BALANCE_MODES)
        _choice("data.cache", self.data.cache, CACHE_MODES)
        _choice("optim.scheduler", self.optim.scheduler, SCHEDULERS)
        _choice("train.monitor", self.train.monitor, MONITORS)
        _choice("train.device", self.train.device, DEVICES)
        _choice("train.precision", self.train.precision, PRECISIONS)
        for key, value, low in (
            ("train.epochs", self.train.epochs, 1),
            ("train.batch_size", self.train.batch_size, 1),
            ("train.eval_batch_size", self.train.eval_batch_size, 1),
            ("train.patience", self.train.patience, 1),
        ):
            if value < low:
                raise ConfigError(f"{key} must be at least {low}, got {value}")
        if self.optim.lr < 0 or self.optim.eps <= 0:
            raise ConfigError(f"optim.lr must be >= 0 and optim.eps > 0, got lr={self.optim.lr}, eps={self.optim.eps}")
        if not 0.0 <= self.loss.label_smoothing < 1.0:
            raise ConfigError(f"loss.label_smoothing must be in [0, 1), got {self.loss.label_smoothing}")
        bad_weights = {k: v for k, v in self.loss.class_weights.items() if not v > 0}
        if bad_weights:
            raise ConfigError(f"loss.class_weights must be positive, got {bad_weights}")
        if self.train.threads is not None and self.train.threads < 1:
            raise ConfigError(f"train.threads must be at least 1 (or null for torch's default), got {self.train.threads}")
        if self.data.num_workers is not None and self.data.num_workers < 0:
            raise ConfigError(f"data.num_workers must be >= 0, got {self.data.num_workers}")

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["optim"]["betas"] = list(self.optim.betas)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str = "config") -> TrainConfig:
        """Build from nested mappings; unknown keys and wrongly typed values raise ConfigError."""
        return _build(cls, data, where, prefix="")


def _choice(key: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ConfigError(f"{key} must be one of {list(choices)}, got {value!r}")


def _build(cls: type, data: Mapping[str, Any], where: str, prefix: str) -> Any:
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where}: {prefix.rstrip('.') or 'the top level'} must be a mapping, got {data!r}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        keys = [prefix + k for k in unknown]
        raise ConfigError(f"{where}: unknown key(s) {keys}; known in this section: {sorted(fields)}")
    hints = typing.get_type_hints(cls)
    values = {}
    for name, value in data.items():
        key = prefix + name
        hint = hints[name]
        if dataclasses.is_dataclass(hint):
            values[name] = _build(hint, value or {}, where, prefix=f"{key}.")
        else:
            values[name] = _coerce(hint, value, key, where)
    try:
        return cls(**values)
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None


def _coerce(hint: Any, value: Any, key: str, where: str) -> Any:
    """``value`` checked against (and gently converted to) the annotated type ``hint``."""
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        # Try bool before the others so that 'true' never becomes a string path.
        for option in sorted(args, key=lambda a: a is not bool):
            try:
                return _coerce(option, value, key, where)
            except ConfigError:
                continue
        raise ConfigError(f"{where}: {key} must be {_describe(hint)}, got {value!r}")
    if hint is type(None):
        if value is None:
            return None
    elif hint is bool:
        if isinstance(value, bool):
            return value
    elif hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif hint is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            # YAML 1.1 reads '1e-3' (no dot) as a string; people mean the number.
            try:
                return float(value)
            except ValueError:
                pass
    elif hint is str:
        if isinstance(value, str):
            return value
    elif origin is tuple:
        if isinstance(value, (list, tuple)) and len(value) == len(args):
            return tuple(_coerce(a, v, key, where) for a, v in zip(args, value))
    elif origin is dict:
        if isinstance(value, Mapping):
            return {_coerce(args[0], k, key, where): _coerce(args[1], v, key, where) for k, v in value.items()}
    raise ConfigError(f"{where}: {key} must be {_describe(hint)}, got {value!r}")


def _describe(hint: Any) -> str:
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return " or ".join(_describe(a) for a in typing.get_args(hint))
    if hint is type(None):
        return "null"
    return getattr(hint, "__name__", str(hint)).replace("dict", "a mapping").replace("tuple", "a list")


def parse_override(text: str) -> tuple[list[str], Any]:
    """``'optim.lr=0.001'`` -> (['optim', 'lr'], 0.001); the value is parsed as YAML."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"override {text!r} must look like section.field=value (e.g. optim.lr=0.001)")
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError as exc:
        raise ConfigError(f"override {text!r}: value is not valid YAML ({exc})") from None
    return key.strip().split("."), value


def apply_overrides(data: dict[str, Any], overrides: Iterable[str]) -> dict[str, Any]:
    """A copy of the nested dict ``data`` with each ``section.field=value`` override set."""
    result = yaml.safe_load(yaml.safe_dump(data))  # deep copy of plain data
    for text in overrides:
        path, value = parse_override(text)
        node = result
        for part in path[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override {text!r}: {part} is not a section")
        node[path[-1]] = value
    return result


def load_config(path: str | Path | None = None, overrides: Iterable[str] = ()) -> TrainConfig:
    """Read a YAML config (or start from the defaults when ``path`` is None) and apply ``overrides``."""
    data: dict[str, Any] = {}
    where = "config"
    if path is not None:
        file = Path(path)
        where = str(file)
        if not file.is_file():
            raise ConfigError(f"{file}: config file not found")
        try:
            data = yaml.safe_load(file.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"{file}: not valid YAML ({exc})") from None
        if not isinstance(data, dict):
            raise ConfigError(f"{file}: the top level must be a mapping of sections, got {type(data).__name__}")
    overrides = list(overrides)
    if overrides:
        data = apply_overrides(data, overrides)
        where = f"{where} (with overrides)"
    return TrainConfig.from_dict(data, where)


def save_config(config: TrainConfig, path: str | Path) -> None:
    """Write ``config`` as YAML, atomically (the run's ``config.yaml``)."""
    with atomic_open(path) as handle:
        yaml.safe_dump(config.to_dict(), handle, sort_keys=False)


def config_differences(a: TrainConfig, b: TrainConfig) -> list[str]:
    """Dotted keys whose values differ between two configs."""
    return sorted(_diff(a.to_dict(), b.to_dict(), ""))


def _diff(a: Mapping[str, Any], b: Mapping[str, Any], prefix: str) -> list[str]:
    keys = []
    for name in a.keys() | b.keys():
        left, right = a.get(name), b.get(name)
        if isinstance(left, Mapping) and isinstance(right, Mapping) and name != "class_weights":
            keys += _diff(left, right, f"{prefix}{name}.")
        elif left != right:
            keys.append(prefix + name)
    return keys
