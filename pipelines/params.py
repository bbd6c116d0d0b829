"""Pipeline parameters given as ``key=value`` strings, typed and checked against the pipeline's inputs.

Values are parsed as YAML (``epochs=2`` is an int, ``soft_attention=false`` a bool,
``configs=[{arch: resnet18, soft_attention: true}]`` a list), then checked against the type the pipeline
declares, so a typo or a wrong type fails before anything runs or is submitted.
"""

from typing import Any

import yaml

from skinattn_pipelines import PipelineError

# KFP's parameter types → the Python types a value may have.
_ACCEPTED: dict[str, tuple[type, ...]] = {
    "STRING": (str,),
    "NUMBER_INTEGER": (int,),
    "NUMBER_DOUBLE": (float, int),
    "BOOLEAN": (bool,),
    "LIST": (list,),
    "STRUCT": (dict,),
}


def parameter_types(pipeline) -> dict[str, str]:
    """``{name: KFP parameter type}`` of a pipeline's inputs."""
    return {name: spec.type for name, spec in (pipeline.component_spec.inputs or {}).items()}


def required_parameters(pipeline) -> list[str]:
    """Inputs without a default value."""
    inputs = pipeline.component_spec.inputs or {}
    return sorted(name for name, spec in inputs.items() if spec.default is None and not spec.optional)


def _kfp_type(type_name: str) -> str:
    """Normalise the SDK's spellings (``String``, ``Integer``...) to the IR's."""
    aliases = {"String": "STRING", "Integer": "NUMBER_INTEGER", "Float": "NUMBER_DOUBLE", "Boolean": "BOOLEAN",
               "List": "LIST", "Dict": "STRUCT"}  # fmt: skip
    return aliases.get(type_name, type_name)


def parse_params(pipeline, items: list[str], problems: list[str] | None = None) -> dict[str, Any]:
    """Typed arguments for ``pipeline`` from ``key=value`` strings (later keys win).

    Every bad item is reported, not just the first: appended to ``problems`` when the caller passes a list
    (``skinattn_pipelines.validate`` adds the checks of the values to them), else in one PipelineError.
    """
    types = parameter_types(pipeline)
    arguments: dict[str, Any] = {}
    found: list[str] = []
    for item in items:
        try:
            key, value = _parse_item(item, types)
        except PipelineError as exc:
            found.append(str(exc))
        else:
            arguments[key] = value
    if problems is not None:
        problems.extend(found)
    elif found:
        raise PipelineError("; ".join(found))
    return arguments


def _parse_item(item: str, types: dict[str, str]) -> tuple[str, Any]:
    key, sep, text = item.partition("=")
    key = key.strip()
    if not sep or not key:
        raise PipelineError(f"parameter {item!r}: expected key=value")
    if key not in types:
        raise PipelineError(f"unknown parameter {key!r}; this pipeline takes: {', '.join(sorted(types))}")
    try:
        value = yaml.safe_load(text) if text.strip() else ""
    except yaml.YAMLError as exc:
        raise PipelineError(f"parameter {key}: cannot parse {text!r} ({exc})") from None
    kfp_type = _kfp_type(types[key])
    if kfp_type == "STRING" and not isinstance(value, str):
        value = text  # "0001" or "true" for a string parameter means the text as written
    if kfp_type == "NUMBER_DOUBLE" and isinstance(value, str):
        try:  # YAML 1.1 reads "1e-3" (no dot) as a string
            value = float(value)
        except ValueError:
            pass
    accepted = _ACCEPTED.get(kfp_type, (object,))
    if not isinstance(value, accepted) or (isinstance(value, bool) and bool not in accepted):
        raise PipelineError(f"parameter {key}={text!r}: expected {kfp_type.lower()}, got {type(value).__name__}")
    return key, float(value) if kfp_type == "NUMBER_DOUBLE" else value


def check_required(pipeline, arguments: dict[str, Any]) -> None:
    """Refuse a run that leaves a parameter without default unset."""
    missing = [name for name in required_parameters(pipeline) if name not in arguments]
    if missing:
        raise PipelineError(f"missing parameter(s) {missing}: pass --param NAME=VALUE")
