"""The training pipeline's ``pretrained`` parameter (issue 14, item 5): checked by the validation step, and
passed to both train paths (pod and TrainJob) as ``model.pretrained``."""

from __future__ import annotations

import pytest
import yaml

from skinattn.run_parameters import check_parameters
from skinattn.steps.training import training_overrides
from skinattn_pipelines import compile_pipeline

SETTINGS = dict(arch="resnet10t", soft_attention=True, image_size=32, epochs=1, batch_size=2, lr=0.01, seed=0)


@pytest.mark.parametrize("value", ["", "s3://models/pretrained/resnet10t.a1_in1k.safetensors", "/weights/irv2.pth"])
def test_accepted_values(value):
    assert check_parameters({"pretrained": value}).problems == []


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("s3://models/pretrained/", "must name one weights file"),
        ("s3://models/weights.pkl", "must name one weights file ending in .safetensors, .pth, .pt, .bin"),
        ("s3://weights.safetensors", "needs a bucket and a key"),
        (True, "must be text"),
    ],
)
def test_refused_values_name_the_parameter_and_why(value, reason):
    (problem,) = check_parameters({"pretrained": value}).problems
    assert problem.parameter == "pretrained" and reason in problem.reason


def test_the_training_override_is_set_only_when_given():
    assert not any(o.startswith("model.pretrained=") for o in training_overrides("/p", "/r", **SETTINGS))
    uri = "s3://models/pretrained/resnet10t.safetensors"
    overrides = training_overrides("/p", "/r", **SETTINGS, pretrained=uri)
    assert f'model.pretrained="{uri}"' in overrides


def test_the_form_parameter_reaches_validation_and_both_train_paths(tmp_path, clean_env):
    path = compile_pipeline("training", str(tmp_path / "training.yaml"))
    spec = next(d for d in yaml.safe_load_all(open(path, encoding="utf-8")) if d)
    parameter = spec["root"]["inputDefinitions"]["parameters"]["pretrained"]
    assert parameter["defaultValue"] == "" and parameter["description"].startswith("Starting weights of the backbone")
    tasks = dict(spec["root"]["dag"]["tasks"])
    for component in spec["components"].values():
        tasks.update(component.get("dag", {}).get("tasks", {}))
    for name in ("validate-training-run", "train", "train-trainjob"):
        source = tasks[name]["inputs"]["parameters"]["pretrained"]["componentInputParameter"]
        assert source.endswith("pretrained"), name
