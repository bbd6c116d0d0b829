"""The parameters of a pipeline run, checked before anything is scheduled.

One rule set, shared by everything that starts a run: the CLI (``skinattn pipeline run --local``,
``submit``, ``upload`` for the pipeline's defaults, ``schedule``), through ``skinattn_pipelines.validate``,
and the first step of every compiled pipeline (``validate-*-run``, through :mod:`skinattn.steps.validation`),
because a run started from the KFP UI never passes through the CLI. No kfp here.

Rules are keyed by parameter NAME (``epochs`` means the same thing in every pipeline); every rule runs and
every problem is collected, so one message names every bad parameter. A typo must not be retried like a
preemption, and must not wait for ingest and prepare to fail in train.

``reach`` says how far a check may look beyond the values:

- ``offline``: the values only (``upload`` checks the defaults a UI form starts from);
- ``client``: also the data, as far as this machine can see it: S3 prefixes when S3 endpoint or credentials
  are configured here (one list request for at most one key, short timeouts), local paths only with
  ``local_paths=True`` (``run --local``; on a cluster a path names the pods' file system). What cannot be
  checked from here (an endpoint only the cluster reaches, other credentials) is a warning, not an error:
  the pipeline's own first step checks it again;
- ``pod``: the pipeline's first step: every location must be reachable and the data prefix non-empty.
"""

from __future__ import annotations

import ast
import dataclasses
import difflib
import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

from skinattn.errors import SkinattnError

Reach = Literal["offline", "client", "pod"]

# Images smaller than this leave the backbones' last stages with nothing to see (the tests train at 32 px);
# larger than this is far above the source images (HAM10000 is 600x450) and only costs memory.
IMAGE_SIZE_RANGE = (32, 1024)
# sklearn's and numpy's random states take 0 <= seed < 2**32, and the splitter also uses seed + 1.
SEED_RANGE = (0, 2**32 - 2)
# Trainings per ablation configuration: 2 or more to judge seed noise; 20 already makes the default ten
# configurations 200 trainings.
SEEDS_RANGE = (1, 20)
# skinattn.data.splits.PROTOCOLS, written out: importing the splitter pulls in scikit-learn, which the CLI's
# pre-flight check must not pay (a test keeps the two equal).
SPLIT_PROTOCOLS: tuple[str, ...] = ("grouped", "paper")
# Weights files model.pretrained accepts (skinattn.models.pretrained.FORMATS, written out: no torch import here).
PRETRAINED_SUFFIXES: tuple[str, ...] = (".safetensors", ".pth", ".pt", ".bin")
# skinattn.registry.gate.PROMOTION_SOURCES, written out: the registry's import is not needed for a name (a test
# keeps the two equal).
PROMOTION_SOURCES: tuple[str, ...] = ("internal", "external")
# The train step's own time limit when train_timeout_hours is 0 ("auto"): a fixed start-up allowance plus a
# budget per epoch. 15 min/epoch covers the paper's setting (inception_resnet_v2 at 299 px on ~52,000
# balanced training images) on one older GPU; bigger data or slower GPUs should set the hours explicitly.
AUTO_TRAIN_BASE_HOURS = 1.0
AUTO_TRAIN_HOURS_PER_EPOCH = 0.25
# The train pod needs time besides training (image pull, downloading the prepared set, uploading the model):
# its own limit must end this long before the pod's deadline, so that the step fails with its own message.
TRAIN_DEADLINE_MARGIN_HOURS = 1.0
# How long a pre-flight request may take from a workstation before the check gives up (and warns).
CLIENT_PROBE_TIMEOUT_S = 3.0
POD_PROBE_TIMEOUT_S = 15.0
# Parameters naming a location, and whether the check wants objects under it (data) or only a reachable
# bucket (a registry or an output folder that may not exist yet).
_DATA_LOCATIONS = ("data_uri", "source_uri", "external_test_uri")  # an empty external_test_uri: none, unchecked
_OUTPUT_LOCATIONS = ("registry_root", "output_uri")


@dataclasses.dataclass(frozen=True)
class Problem:
    """One bad parameter: its name, the value given, and why it cannot run."""

    parameter: str
    value: Any
    reason: str

    def __str__(self) -> str:
        return f"{self.parameter}={self.value!r}: {self.reason}"


@dataclasses.dataclass
class Report:
    """What a check found: ``problems`` refuse the run; ``warnings`` are printed; ``notes`` say what was checked."""

    problems: list[Problem] = dataclasses.field(default_factory=list)
    warnings: list[str] = dataclasses.field(default_factory=list)
    notes: list[str] = dataclasses.field(default_factory=list)


class ParameterError(SkinattnError):
    """The run's parameters cannot work; the message names every bad one with the reason."""

    def __init__(self, pipeline: str, problems: Sequence[Problem | str]) -> None:
        self.pipeline = pipeline
        self.problems = list(problems)  # a str: a value that could not even be read (``--param`` parsing)
        lines = "\n".join(f"  {problem}" for problem in self.problems)
        super().__init__(f"{len(self.problems)} bad parameter(s) for the {pipeline} pipeline:\n{lines}")


# ---- the names the rules accept ------------------------------------------------------------------------------


def architecture_names() -> tuple[str, ...]:
    """The architectures ``skinattn.models`` registers, read from the ``@register_arch("name", ...)``
    decorators of ``skinattn/models/archs.py`` instead of importing it: importing the models pulls in torch
    and timm (about 3 s), which the CLI's pre-flight check must not pay. A test compares this with
    ``skinattn.models.list_archs()``."""
    source = Path(__file__).resolve().parent / "models" / "archs.py"
    names = []
    for node in ast.walk(ast.parse(source.read_text(encoding="utf-8"))):
        if isinstance(node, ast.FunctionDef):
            for decorator in node.decorator_list:
                if (isinstance(decorator, ast.Call) and getattr(decorator.func, "id", None) == "register_arch"
                        and decorator.args and isinstance(decorator.args[0], ast.Constant)):  # fmt: skip
                    names.append(str(decorator.args[0].value))
    return tuple(sorted(names))


def data_formats() -> tuple[str, ...]:
    from skinattn.data.readers import FORMATS

    return FORMATS


def output_formats() -> tuple[str, ...]:
    from skinattn.steps.scoring import SCORE_OUTPUT_FORMATS

    return SCORE_OUTPUT_FORMATS


def train_time_limit_hours(train_timeout_hours: float, epochs: int) -> float:
    """The train step's own limit: ``train_timeout_hours``, or when it is 0 (auto) a budget that scales with
    the epochs (``AUTO_TRAIN_BASE_HOURS + AUTO_TRAIN_HOURS_PER_EPOCH * epochs``)."""
    hours = float(train_timeout_hours)
    return hours if hours > 0 else AUTO_TRAIN_BASE_HOURS + AUTO_TRAIN_HOURS_PER_EPOCH * int(epochs)


# ---- one rule per parameter name -----------------------------------------------------------------------------

Rule = Callable[[Any], "str | None"]


def _is_int(value: Any) -> bool:
    # kfp.local hands numbers inside lists over as floats; 3.0 is a whole number, True is not.
    return not isinstance(value, bool) and (isinstance(value, int) or (isinstance(value, float) and value.is_integer()))


def _int_in(low: int, high: int | None = None) -> Rule:
    def rule(value: Any) -> str | None:
        if not _is_int(value):
            return "must be a whole number"
        if value < low or (high is not None and value > high):
            return f"must be at least {low}" if high is None else f"must be between {low} and {high}"
        return None

    return rule


def _choice(name: str, choices: Callable[[], tuple[str, ...]]) -> Rule:
    def rule(value: Any) -> str | None:
        known = choices()
        if value in known:
            return None
        close = difflib.get_close_matches(str(value), known, n=1)
        hint = f" (did you mean {close[0]}?)" if close else ""
        return f"unknown {name}{hint}; choose one of {', '.join(known)}"

    return rule


def _text(value: Any) -> str | None:
    return None if isinstance(value, str) and value.strip() else "must not be empty"


def _any_text(value: Any) -> str | None:
    return None if isinstance(value, str) else "must be a string"


def _boolean(value: Any) -> str | None:
    return None if isinstance(value, bool) else "must be true or false"


def _positive_number(value: Any) -> str | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        return "must be a number above 0"
    return None


def _hours(value: Any) -> str | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        return "must be a number of hours, at least 0 (0 = derived from epochs)"
    return None


def _metric(value: Any) -> str | None:
    from skinattn.registry.metrics import metric_direction
    from skinattn.registry.errors import RegistryError

    if not isinstance(value, str) or not value.strip():
        return "must name a metric of the evaluation's metrics.json, e.g. balanced_accuracy"
    try:
        metric_direction(value)
    except RegistryError:
        return ("cannot tell whether higher or lower is better from the name; use a flattened name of the "
                "evaluation's metrics.json such as balanced_accuracy, accuracy, weighted_avg.auc")  # fmt: skip
    return None


def _configs(value: Any) -> str | None:
    if not isinstance(value, list) or not value:
        return "must be a non-empty list of {arch: ..., soft_attention: true|false}"
    archs = architecture_names()
    reasons, seen = [], set()
    for index, config in enumerate(value):
        if not isinstance(config, Mapping) or set(config) != {"arch", "soft_attention"}:
            reasons.append(f"item {index} must have exactly the keys arch and soft_attention")
            continue
        arch_reason = _choice("architecture", lambda: archs)(config["arch"])
        if arch_reason:
            reasons.append(f"item {index}: arch {config['arch']!r}: {arch_reason}")
        if not isinstance(config["soft_attention"], bool):
            reasons.append(f"item {index}: soft_attention must be true or false")
        key = (config["arch"], config["soft_attention"])
        if key in seen:
            reasons.append(f"item {index} repeats {config['arch']} with soft_attention={config['soft_attention']}")
        seen.add(key)
    return "; ".join(reasons) or None


def _pretrained(value: Any) -> str | None:
    """'' (random init) or a weights file by path or s3:// URI, of a kind skinattn.models.pretrained reads
    (its FORMATS, written out: importing the models would pull in torch)."""
    if not isinstance(value, str):
        return "must be text: '' or the path or s3:// URI of a weights file"
    text = value.strip()
    if not text:
        return None
    if text.endswith("/") or Path(text.rsplit("/", 1)[-1]).suffix.lower() not in PRETRAINED_SUFFIXES:
        return (f"must name one weights file ending in {', '.join(PRETRAINED_SUFFIXES)} (.safetensors preferred), "
                "or be '' for random initialisation")
    if text.startswith("s3://") and len(text[len("s3://"):].split("/", 1)) < 2:
        return "an s3:// URI needs a bucket and a key: s3://bucket/path/weights.safetensors"
    return None


RULES: dict[str, Rule] = {
    "data_uri": _text,
    "source_uri": _text,
    "data_format": _choice("data format", data_formats),
    "arch": _choice("architecture", architecture_names),
    "configs": _configs,
    "soft_attention": _boolean,
    "image_size": _int_in(*IMAGE_SIZE_RANGE),
    "epochs": _int_in(1),
    "batch_size": _int_in(1),
    "lr": _positive_number,
    "seed": _int_in(*SEED_RANGE),
    "seeds": _int_in(*SEEDS_RANGE),
    "split_protocol": _choice("split protocol", lambda: SPLIT_PROTOCOLS),
    "gpus": _int_in(0),
    "trainer": _choice("trainer", lambda: ("pod", "trainjob")),  # pipelines/_trainjob.py TRAINERS
    "nodes": _int_in(1),
    "gpus_per_shard": _int_in(0, 1),
    "promotion_metric": _metric,
    "promotion_source": _choice("promotion source", lambda: PROMOTION_SOURCES),
    "external_test_uri": _any_text,
    "external_test_format": _choice("data format", data_formats),
    "registry_root": _text,
    "bootstrap": _int_in(0),
    "train_timeout_hours": _hours,
    "model": _text,
    "num_shards": _int_in(1),
    "workers": _int_in(0),
    "output_format": _choice("output format", output_formats),
    "output_uri": _any_text,
    "pretrained": _pretrained,
}


# ---- the checks ----------------------------------------------------------------------------------------------


def check_parameters(
    params: Mapping[str, Any],
    *,
    reach: Reach = "offline",
    local_paths: bool = False,
    train_deadline_hours: float | None = None,
) -> Report:
    """Every rule on every parameter it knows, then the checks across parameters, then (``reach``) the data.

    ``train_deadline_hours``: the train pod's activeDeadlineSeconds in hours (fixed at compile time); the
    train step's own limit must end before it, or Kubernetes kills the pod without a message.
    """
    report = Report()
    for name, value in params.items():
        rule = RULES.get(name)
        reason = rule(value) if rule is not None else None
        if reason:
            report.problems.append(Problem(name, value, reason))
    bad = {problem.parameter for problem in report.problems}
    if params.get("promotion_source") == "external" and not str(params.get("external_test_uri", "")).strip():
        report.problems.append(Problem(
            "promotion_source", "external",
            "the gate can compare on the external test set only when there is one: set external_test_uri "
            "(and external_test_format), or use promotion_source=internal",
        ))  # fmt: skip
    if train_deadline_hours and "train_timeout_hours" in params and not bad & {"train_timeout_hours", "epochs"}:
        hours = train_time_limit_hours(params["train_timeout_hours"], params.get("epochs", 1))
        longest = train_deadline_hours - TRAIN_DEADLINE_MARGIN_HOURS
        if hours > longest:
            derived = "" if params["train_timeout_hours"] else f" (derived from epochs={params.get('epochs')})"
            report.problems.append(Problem(
                "train_timeout_hours", params["train_timeout_hours"],
                f"a train limit of {hours:g} h{derived} does not end {TRAIN_DEADLINE_MARGIN_HOURS:g} h before the "
                f"train pod's deadline of {train_deadline_hours:g} h: set train_timeout_hours to at most "
                f"{longest:g}, or raise SKINATTN_TIMEOUT_TRAIN when compiling (docs/pipelines.md)",
            ))  # fmt: skip
    if reach != "offline":
        for name in (*_DATA_LOCATIONS, *_OUTPUT_LOCATIONS):
            value = params.get(name)
            if name in bad or not isinstance(value, str) or not value.strip():
                continue
            _check_location(report, name, value.strip(), reach=reach, local_paths=local_paths,
                            want_objects=name in _DATA_LOCATIONS)  # fmt: skip
    return report


def validate_parameters(pipeline: str, params: Mapping[str, Any], **options: Any) -> Report:
    """:func:`check_parameters`, raising :class:`ParameterError` (every problem in one message) if any."""
    report = check_parameters(params, **options)
    if report.problems:
        raise ParameterError(pipeline, report.problems)
    return report


def _check_location(report: Report, name: str, uri: str, *, reach: Reach, local_paths: bool, want_objects: bool) -> None:
    from skinattn.storage.entries import S3_SCHEME

    if uri.startswith(S3_SCHEME):
        _check_s3(report, name, uri, reach=reach, want_objects=want_objects)
    elif want_objects and (reach == "pod" or local_paths):
        reason = _local_data_problem(Path(uri))
        if reason:
            report.problems.append(Problem(name, uri, reason))
        else:
            report.notes.append(f"{name}: {uri} is there")
    # A local registry or output folder is created when it is first written: nothing to check beforehand.


def _local_data_problem(path: Path) -> str | None:
    import zipfile

    if path.is_dir():
        return None if any(path.iterdir()) else "the folder is empty"
    if path.is_file():
        return None if zipfile.is_zipfile(path) else "not a folder, a .zip archive or an s3:// prefix"
    return "no such file or folder" + ("" if path.is_absolute() else f" (relative to {Path.cwd()})")


def _check_s3(report: Report, name: str, uri: str, *, reach: Reach, want_objects: bool) -> None:
    from skinattn.errors import DataError
    from skinattn.storage import s3

    if reach == "client" and not s3.configured():
        report.notes.append(f"{name}: not checked (no S3 endpoint or credentials configured here)")
        return
    timeout = POD_PROBE_TIMEOUT_S if reach == "pod" else CLIENT_PROBE_TIMEOUT_S
    try:
        found = s3.probe(uri, timeout_s=timeout)
    except DataError as exc:
        code = s3.error_code(exc.__cause__) if exc.__cause__ is not None else None
        if code in ("NoSuchBucket", "InvalidBucketName") or reach == "pod":
            report.problems.append(Problem(name, uri, str(exc)))
        else:  # another endpoint, other credentials, a cluster-internal host: the pipeline checks again
            report.warnings.append(f"{name}: could not check {uri} from here ({exc}); the pipeline's first step will")
        return
    if want_objects and not found:
        report.problems.append(Problem(name, uri, "no objects under this prefix"))
    else:
        report.notes.append(f"{name}: {uri} is reachable" + (" and not empty" if want_objects else ""))
