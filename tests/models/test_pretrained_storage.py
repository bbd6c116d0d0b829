"""``model.pretrained`` from the user's storage (issue 14, item 5): a local file or an ``s3://`` object of
timm weights, fetched into a content-addressed cache, loaded without pickle, and recorded (source, sha256,
format) in the model card. S3 is the suite's moto server over HTTP."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import boto3
import pytest
import timm
import torch
from safetensors.torch import save_file

from skinattn.errors import ModelError
from skinattn.models import create_model, load_model, save_model
from skinattn.models.pretrained import resolve_pretrained

BUCKET = "pretrained-weights"


@pytest.fixture
def bucket(s3_endpoint: str, s3_env: dict[str, str]):  # noqa: ANN201 - a boto3 client
    client = boto3.client("s3", endpoint_url=s3_endpoint)
    if BUCKET not in {b["Name"] for b in client.list_buckets().get("Buckets", [])}:
        client.create_bucket(Bucket=BUCKET)
    return client


@pytest.fixture
def backbone_file(tmp_path: Path) -> tuple[Path, torch.nn.Module]:
    """A resnet10t backbone (timm layout, ImageNet head included) with seeded random weights, as safetensors."""
    torch.manual_seed(11)
    backbone = timm.create_model("resnet10t")
    path = tmp_path / "resnet10t.safetensors"
    save_file({k: v.contiguous() for k, v in backbone.state_dict().items()}, str(path))
    return path, backbone


def test_s3_weights_load_into_the_backbone_and_the_card_records_their_sha256(
    bucket, backbone_file: tuple[Path, torch.nn.Module], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path, backbone = backbone_file
    bucket.upload_file(str(path), BUCKET, "timm/resnet10t.safetensors")
    monkeypatch.setenv("SKINATTN_CACHE_DIR", str(tmp_path / "cache"))
    digest = hashlib.sha256(path.read_bytes()).hexdigest()

    model = create_model("resnet10t", pretrained=f"s3://{BUCKET}/timm/resnet10t.safetensors", img_size=32)

    torch.testing.assert_close(model.trunk[0][0].weight, backbone.conv1[0].weight, rtol=0, atol=0)
    for name, value in backbone.state_dict().items():
        if name.startswith("layer1."):
            torch.testing.assert_close(model.state_dict()[f"trunk.{name.replace('layer1.', '4.')}"], value, rtol=0, atol=0)
    cached = tmp_path / "cache" / "pretrained" / "sha256" / f"{digest}.safetensors"
    assert cached.read_bytes() == path.read_bytes()  # content-addressed, complete
    assert not [p for p in cached.parent.iterdir() if p != cached], "a temporary download was left behind"

    saved = save_model(model, tmp_path / "model")
    card = json.loads((saved / "model.json").read_text())
    assert card["pretrained"] == {"source": f"s3://{BUCKET}/timm/resnet10t.safetensors", "sha256": digest,
                                  "format": "safetensors"}  # fmt: skip
    # Loading and saving again keeps the provenance: it is what the trainer does with its best epoch.
    assert load_model(saved).pretrained_weights == card["pretrained"]


def test_a_missing_object_names_the_uri(bucket, tmp_path: Path) -> None:
    with pytest.raises(ModelError, match=rf"s3://{BUCKET}/timm/missing.safetensors.*(NoSuchKey|404|Not Found)"):
        resolve_pretrained(f"s3://{BUCKET}/timm/missing.safetensors", cache_root=tmp_path)


def test_a_file_that_is_not_safetensors_is_refused_clearly(bucket, tmp_path: Path) -> None:
    bucket.put_object(Bucket=BUCKET, Key="timm/garbage.safetensors", Body=b"not a safetensors file at all")
    with pytest.raises(ModelError, match=rf"s3://{BUCKET}/timm/garbage.safetensors \(fetched to .*: cannot read weights"):
        create_model("resnet10t", pretrained=f"s3://{BUCKET}/timm/garbage.safetensors", img_size=32)


def test_weights_of_another_architecture_are_refused(bucket, backbone_file: tuple[Path, torch.nn.Module]) -> None:
    path, _ = backbone_file
    bucket.upload_file(str(path), BUCKET, "timm/for-resnet18.safetensors")
    with pytest.raises(ModelError, match="do not fit"):
        create_model("resnet18", pretrained=f"s3://{BUCKET}/timm/for-resnet18.safetensors")


def test_only_safetensors_or_weights_only_torch_files_are_accepted(tmp_path: Path) -> None:
    pickle_file = tmp_path / "weights.pkl"
    pickle_file.write_bytes(b"\x80\x04K\x01.")
    with pytest.raises(ModelError, match=r"must be a \.safetensors file .*got \.pkl"):
        create_model("resnet10t", pretrained=pickle_file)
    with pytest.raises(ModelError, match="got no suffix"):
        resolve_pretrained("s3://bucket/weights")


def test_a_local_torch_state_dict_is_recorded_with_its_sha256(backbone_file: tuple[Path, torch.nn.Module],
                                                              tmp_path: Path) -> None:  # fmt: skip
    _, backbone = backbone_file
    pth = tmp_path / "resnet10t.pth"
    torch.save(backbone.state_dict(), pth)
    model = create_model("resnet10t", pretrained=pth, img_size=32)
    assert model.pretrained_weights == {"source": str(pth.resolve()), "format": "torch",
                                        "sha256": hashlib.sha256(pth.read_bytes()).hexdigest()}  # fmt: skip
    torch.testing.assert_close(model.trunk[0][0].weight, backbone.conv1[0].weight, rtol=0, atol=0)
    assert create_model("resnet10t", pretrained="", img_size=32).pretrained_weights is None  # a pipeline's default
