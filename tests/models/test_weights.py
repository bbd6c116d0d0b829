"""Safetensors + JSON card round trip, without pickle."""

from __future__ import annotations

import json
import pickle

import pytest
import torch

from skinattn.errors import ModelError
from skinattn.models import create_model, load_model, save_model
from skinattn.models.weights import CARD_FILE, WEIGHTS_FILE


@pytest.mark.parametrize("soft_attention", [True, False])
def test_round_trip_gives_identical_logits(tmp_path, monkeypatch, soft_attention):
    torch.manual_seed(0)
    model = create_model("resnet18", soft_attention=soft_attention, img_size=64).eval()
    with torch.no_grad():
        model.attention_layer and model.attention_layer.gamma.fill_(0.37)
    save_model(model, tmp_path, metadata={"note": "test"})

    def no_pickle(*args, **kwargs):
        raise AssertionError("pickle must not be used to load a model")

    monkeypatch.setattr(torch, "load", no_pickle)
    monkeypatch.setattr(pickle, "load", no_pickle)
    monkeypatch.setattr(pickle, "loads", no_pickle)
    loaded = load_model(tmp_path)
    x = torch.randn(3, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(model(x), loaded(x))
    assert loaded.config == model.config
    assert not loaded.training


def test_card_holds_what_a_server_needs(tmp_path):
    model = create_model("resnet10t", num_classes=3, class_names=["mel", "nv", "sk"], img_size=32)
    save_model(model, tmp_path, metadata={"epochs": 2})
    card = json.loads((tmp_path / CARD_FILE).read_text())
    assert card["format"] == "skinattn-model"
    assert card["config"]["arch"] == "resnet10t"
    assert card["config"]["class_names"] == ["mel", "nv", "sk"]
    assert card["config"]["input_size"] == 32
    assert card["config"]["soft_attention"] is True
    assert len(card["config"]["mean"]) == 3 and len(card["config"]["std"]) == 3
    assert card["metadata"] == {"epochs": 2}
    # A safetensors file: 8-byte little-endian header length, then a JSON header.
    raw = (tmp_path / WEIGHTS_FILE).read_bytes()
    header = json.loads(raw[8 : 8 + int.from_bytes(raw[:8], "little")])
    assert "block.attention.gamma" in header
    assert not list(tmp_path.glob(".*.tmp")), "temporary files left behind"


def test_broken_model_folders_are_explained(tmp_path):
    with pytest.raises(ModelError, match="no model card"):
        load_model(tmp_path)
    model = create_model("resnet10t", img_size=32)
    save_model(model, tmp_path)
    card = json.loads((tmp_path / CARD_FILE).read_text())
    card["config"]["soft_attention"] = False
    (tmp_path / CARD_FILE).write_text(json.dumps(card))
    with pytest.raises(ModelError, match="do not match"):
        load_model(tmp_path)
    (tmp_path / WEIGHTS_FILE).write_bytes(b"not safetensors")
    with pytest.raises(ModelError, match="cannot read safetensors"):
        load_model(tmp_path)
    (tmp_path / CARD_FILE).write_text('{"format": "something-else"}')
    with pytest.raises(ModelError, match="not a skinattn model card"):
        load_model(tmp_path)



def test_saved_files_are_readable_by_other_users(tmp_path):
    """A model written by one container user is read by another (the serving image, a later KFP step):
    safetensors' writer creates its file 0600, which the atomic rename must not carry over."""
    import stat

    out = save_model(create_model("resnet10t", soft_attention=False, pretrained=False), tmp_path / "m")
    for name in (WEIGHTS_FILE, CARD_FILE):
        mode = stat.S_IMODE((out / name).stat().st_mode)
        assert mode & 0o044 == 0o044, f"{name} is {oct(mode)}"
