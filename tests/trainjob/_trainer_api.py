"""Validate a TrainJob object against the Kubeflow Trainer v2.2 API, offline.

Source of truth: the ``kubeflow-trainer-api==2.2.0`` package (a dev dependency in pyproject.toml), the
pydantic models that kubeflow/trainer generates from the same Go types as its CRDs and publishes with each
release; 2.2.0 is the release pinned in infra/cluster.env (SKINATTN_TRAINER_VERSION). Chosen over a
hand-vendored excerpt of the CRD's JSON schema because the CRD cannot be downloaded here and a hand-written
excerpt would be checked against our own reading of it; the models are the release's, versioned with it.

What they check, and what is added here:

- types and required fields: the models (Strict* types: a string where an integer is due fails);
- unknown fields: the models ignore them and the API server would silently DROP them (structural schema
  pruning), so a misspelt field is the worst mistake: :func:`validate_trainjob` parses the object and
  compares the re-serialised object with the input, which names every field the v2.2 API does not have;
- rules the models do not carry: the CRD's CEL rules on ``metadata.name`` (RFC 1035 label, at most 63
  characters), ``runtimeRef.name`` not empty, ``activeDeadlineSeconds`` >= 1 and ``runtimePatches`` <= 16
  (kubebuilder markers of trainjob_types.go), and the Torch plugin's webhook rule that ``spec.trainer.env``
  must not set the PET_* variables torchrun gets from the runtime.
"""

from __future__ import annotations

import json
import re
from typing import Any

RESERVED_ENV = {"PET_NNODES", "PET_NPROC_PER_NODE", "PET_NODE_RANK", "PET_MASTER_ADDR", "PET_MASTER_PORT"}
_NAME = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")


def _diff(given: Any, parsed: Any, path: str, out: list[str]) -> None:
    """Fields of ``given`` that did not survive the round trip through the models (or changed)."""
    if isinstance(given, dict) and isinstance(parsed, dict):
        for key, value in given.items():
            if key not in parsed:
                out.append(f"{path}.{key}: not a field of the v2.2 API")
            else:
                _diff(value, parsed[key], f"{path}.{key}", out)
    elif isinstance(given, list) and isinstance(parsed, list) and len(given) == len(parsed):
        for i, (a, b) in enumerate(zip(given, parsed)):
            _diff(a, b, f"{path}[{i}]", out)
    elif given != parsed:
        out.append(f"{path}: {given!r} became {parsed!r}")


def _plain(value: Any) -> Any:
    """The models' to_dict() can leave model objects (oneOf wrappers such as resource quantities) inside."""
    if hasattr(value, "actual_instance"):
        return _plain(value.actual_instance)
    if hasattr(value, "to_dict"):
        return _plain(value.to_dict())
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def validate_trainjob(obj: dict[str, Any]) -> list[str]:
    """Every problem of ``obj`` as a v2.2 TrainJob (empty list: valid)."""
    from kubeflow_trainer_api.models.trainer_v1alpha1_train_job import TrainerV1alpha1TrainJob
    from pydantic import ValidationError

    problems: list[str] = []
    try:
        model = TrainerV1alpha1TrainJob.from_dict(json.loads(json.dumps(obj)))
    except (ValidationError, ValueError) as exc:
        return [f"does not parse as a v2.2 TrainJob: {exc}"]
    _diff(obj, _plain(model.to_dict()), "", problems)
    name = (obj.get("metadata") or {}).get("name") or ""
    if len(name) > 63 or not _NAME.fullmatch(name):
        problems.append(f"metadata.name {name!r}: must match RFC 1035 DNS label format, at most 63 characters")
    spec = obj.get("spec") or {}
    if not (spec.get("runtimeRef") or {}).get("name"):
        problems.append("spec.runtimeRef.name: required")
    if "activeDeadlineSeconds" in spec and not spec["activeDeadlineSeconds"] >= 1:
        problems.append("spec.activeDeadlineSeconds: must be at least 1")
    if len(spec.get("runtimePatches") or []) > 16:
        problems.append("spec.runtimePatches: at most 16 items")
    trainer = spec.get("trainer") or {}
    reserved = sorted(RESERVED_ENV & {e.get("name") for e in trainer.get("env") or []})
    if reserved:
        problems.append(f"spec.trainer.env: must not have reserved envs, invalid envs configured: {reserved}")
    names = [e.get("name") for e in trainer.get("env") or []]
    if len(names) != len(set(names)):
        problems.append("spec.trainer.env: duplicate names (a map list keyed by name)")
    return problems
