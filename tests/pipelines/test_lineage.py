"""Lineage from a pipeline run to the registry: prepare emits the data fingerprint, register records the
version it made as a Model artifact (registry location + metadata) without receiving the prepared data set,
and batch scoring records the version it scored with the same way.

The steps run here as plain functions (no kfp); the compiled IR is read for the wiring. The kfp.local runs
(test_local_runs.py, test_batch_scoring_local.py, slow) check the artifacts a real run writes.
"""

from __future__ import annotations

import json
from pathlib import Path

import boto3
import pytest
import torch
import yaml
from _batch_scoring_data import make_registry

from skinattn.data.synthetic import make_sample_dataset
from skinattn.models import create_model, save_model
from skinattn.registry import Registry, fingerprint_manifest
from skinattn.steps import registry as registry_steps
from skinattn.steps import scoring as scoring_steps
from skinattn.steps.data import ingest_step, prepare_step
from skinattn.steps.evaluation import METRICS_FILE
from skinattn_pipelines import compile_pipeline


def _spec(name: str, tmp_path: Path) -> dict:
    return next(yaml.safe_load_all(Path(compile_pipeline(name, str(tmp_path / f"{name}.yaml"))).read_text()))


def test_register_no_longer_receives_the_prepared_data_set(tmp_path, clean_env):
    spec = _spec("training", tmp_path)
    register = spec["components"]["comp-register"]
    assert set(register["inputDefinitions"]["artifacts"]) == {"model", "evaluation"}  # no `prepared`
    assert register["inputDefinitions"]["parameters"]["data_fingerprint"]["parameterType"] == "STRING"
    assert register["outputDefinitions"]["artifacts"]["registered_model"]["artifactType"]["schemaTitle"] == "system.Model"
    # prepare returns the fingerprint; the If around register gets that string and not the prepared artifact.
    assert spec["components"]["comp-prepare"]["outputDefinitions"]["parameters"]["Output"]["parameterType"] == "STRING"
    (condition,) = [c for c in spec["components"].values() if "register" in c.get("dag", {}).get("tasks", {})]
    inputs = condition["dag"]["tasks"]["register"]["inputs"]
    assert inputs["parameters"]["data_fingerprint"] == {"componentInputParameter": "pipelinechannel--prepare-Output"}
    assert not any("prepared" in name for name in condition["inputDefinitions"].get("artifacts", {}))
    (outer,) = [t for t in spec["root"]["dag"]["tasks"].values() if t["taskInfo"]["name"] == "better-than-production"]
    produced = outer["inputs"]["parameters"]["pipelinechannel--prepare-Output"]["taskOutputParameter"]
    assert produced == {"producerTask": "prepare", "outputParameterKey": "Output"}


def test_batch_scoring_records_its_model_as_an_artifact(tmp_path, clean_env):
    spec = _spec("batch_scoring", tmp_path)
    outputs = spec["components"]["comp-resolve-scoring-model"]["outputDefinitions"]
    assert outputs["artifacts"]["scoring_model"]["artifactType"]["schemaTitle"] == "system.Model"
    assert outputs["parameters"]["Output"]["parameterType"] == "STRING"  # the version every shard gets


def test_prepare_emits_the_fingerprint_of_its_manifest_not_of_the_cache(tmp_path):
    make_sample_dataset(tmp_path / "data", per_class=20, size=32, seed=0)
    ingest_step(str(tmp_path / "data"), "ham10000", tmp_path / "manifest")
    cached = prepare_step(tmp_path / "manifest", tmp_path / "cached", seed=0, cache_size=32)
    plain = prepare_step(tmp_path / "manifest", tmp_path / "plain", seed=0, cache_size=None)
    assert cached["data_fingerprint"] == fingerprint_manifest(tmp_path / "cached")  # what register used to compute
    assert cached["data_fingerprint"] == plain["data_fingerprint"]  # the resize cache plays no part in it
    other = prepare_step(tmp_path / "manifest", tmp_path / "other", seed=1, cache_size=None)
    assert other["data_fingerprint"] != plain["data_fingerprint"]  # another split is other data


@pytest.fixture(scope="module")
def candidate(tmp_path_factory) -> tuple[Path, Path]:
    """A model folder and its evaluation folder (metrics.json with a NaN, as an evaluation can produce)."""
    root = tmp_path_factory.mktemp("candidate")
    torch.manual_seed(0)
    model_dir = save_model(create_model("resnet10t", img_size=32), root / "model")
    evaluation = root / "evaluation"
    evaluation.mkdir()
    metrics = {"balanced_accuracy": 0.61, "accuracy": 0.7, "weighted_avg": {"auc": float("nan")}}
    (evaluation / METRICS_FILE).write_text(json.dumps(metrics))
    return model_dir, evaluation


@pytest.fixture(params=["local", "s3"])
def registry_root(request, tmp_path) -> str:
    if request.param == "local":
        return str(tmp_path / "registry")
    env = request.getfixturevalue("s3_env")
    boto3.client("s3", endpoint_url=env["AWS_ENDPOINT_URL"]).create_bucket(Bucket="lineage")
    return "s3://lineage/registry"


def test_register_records_the_version_it_made(candidate, registry_root, tmp_path):
    model_dir, evaluation = candidate
    record_out = tmp_path / "outputs" / "registered_model"
    outcome = registry_steps.register_and_promote(model_dir, evaluation, "sha256:feed", registry_root,
                                                  "balanced_accuracy", "run-42", record_out=record_out)  # fmt: skip
    assert (outcome["version"], outcome["promoted"]) == ("v1", True)
    registry = Registry(registry_root)
    version = registry.get("v1")
    assert version.data_fingerprint == "sha256:feed" and version.run_id == "run-42"

    lineage = outcome["lineage"]
    expected_location = (f"{registry_root}/versions/000001.json" if registry_root.startswith("s3://")
                         else str((Path(registry_root) / "versions" / "000001.json").absolute()))  # fmt: skip
    assert lineage["registry_uri"] == registry.location(version) == expected_location
    assert lineage["version"] == "v1" and lineage["registry"] == registry.uri
    assert lineage["promoted"] is True and "becomes production" in lineage["promotion"]
    assert lineage["data_fingerprint"] == "sha256:feed" and lineage["run_id"] == "run-42"
    assert lineage["metrics"]["balanced_accuracy"] == 0.61 and lineage["metrics"]["weighted_avg.auc"] is None
    json.dumps(lineage, allow_nan=False)  # KFP's launcher parses the metadata as strict JSON: no NaN

    # The artifact's file is the version's record and where it lives: the files' digests pin the exact model.
    record = json.loads(record_out.read_text())
    assert record["registry_uri"] == expected_location and record["version"] == "v1"
    assert record["files"] == json.loads(json.dumps(version.to_dict()["files"]))


def test_scoring_records_the_pinned_version(tmp_path):
    registry = make_registry(tmp_path / "registry", tmp_path)
    pinned = scoring_steps.pin_scoring_model("production", registry.uri, record_out=tmp_path / "scoring_model")
    assert pinned["model"] == "v1"
    lineage = pinned["lineage"]
    assert lineage["registry_uri"] == registry.location(registry.get("v1")) and lineage["version"] == "v1"
    assert lineage["requested"] == "production" and lineage["metrics"] == {"balanced_accuracy": 0.5}
    assert json.loads((tmp_path / "scoring_model").read_text())["registry_uri"] == lineage["registry_uri"]

    model_dir = str(tmp_path / "model")  # a model folder is used in place: nothing in the registry to point at
    folder = scoring_steps.pin_scoring_model(model_dir, "", record_out=tmp_path / "folder_model")
    assert folder["model"] == model_dir and folder["lineage"]["model_folder"] == str(Path(model_dir).absolute())
    assert "registry_uri" not in folder["lineage"]
