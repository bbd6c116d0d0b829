"""What training writes into the model card for issue 14: the starting weights (``model.pretrained`` from the
S3 test server, with their sha256) and the training data facts the model card's data section reads."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import boto3
import pytest
import timm
import torch
from safetensors.torch import save_file

from skinattn.model_card import build_card, render_markdown
from skinattn.models import load_model, read_card
from skinattn.training.trainer import train


@pytest.mark.slow  # one epoch of resnet10t on CPU, about 20-40 s on a shared 2-core machine
def test_training_from_s3_weights_records_them_and_the_data_in_the_card(
    small_config: Any, prepared: Path, tmp_path: Path, s3_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    torch.manual_seed(5)
    backbone = timm.create_model("resnet10t")
    weights = tmp_path / "resnet10t.safetensors"
    save_file({k: v.contiguous() for k, v in backbone.state_dict().items()}, str(weights))
    client = boto3.client("s3", endpoint_url=s3_env["AWS_ENDPOINT_URL"])
    client.create_bucket(Bucket="train-weights")
    client.upload_file(str(weights), "train-weights", "imagenet/resnet10t.safetensors")
    monkeypatch.setenv("SKINATTN_CACHE_DIR", str(tmp_path / "cache"))

    uri = "s3://train-weights/imagenet/resnet10t.safetensors"
    config = small_config(tmp_path / "run", model={"pretrained": uri}, train={"epochs": 1, "calibrate": False})
    result = train(config)

    card = read_card(result.model_dir)
    assert card["pretrained"] == {"source": uri, "sha256": hashlib.sha256(weights.read_bytes()).hexdigest(),
                                  "format": "safetensors"}  # fmt: skip
    assert load_model(result.model_dir).pretrained_weights == card["pretrained"]
    data = card["metadata"]["data"]
    counts = json.loads((prepared / "counts.json").read_text())["splits"]
    assert data["counts"] == counts and data["format"] == "ham10000" and data["split"]["protocol"] == "grouped"
    markdown = render_markdown(build_card(card))
    assert f"| pretrained from | {uri} |" in markdown and "- Licence: CC BY-NC 4.0" in markdown
    assert f"| test | {' | '.join(str(counts['test'][c]) for c in data['classes'])} | {counts['test']['total']} |" in markdown
