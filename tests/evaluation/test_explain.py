"""Grad-CAM and attention overlays: the right layer, the right class, the maths checked by hand, the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from skinattn.cli import main
from skinattn.data.images import open_image
from skinattn.evaluation import Explainer, gradcam_target_layer
from skinattn.models import attention_heatmap, create_model, load_model, preprocess_images


def _test_images(manifest_dir: Path, n: int = 3) -> list[Path]:
    import pandas as pd

    frame = pd.read_csv(manifest_dir / "manifest.csv", dtype=str)
    return [Path(p) for p in frame["image_path"].iloc[:: max(1, len(frame) // n)][:n]]


def _grad_cam_by_hand(model: torch.nn.Module, layer: torch.nn.Module, batch: torch.Tensor, classes: list[int]) -> np.ndarray:
    """Grad-CAM (Selvaraju et al.): ReLU(sum_c mean_hw(dy/dA_c) * A_c), upsampled, scaled to [0, 1] per image."""
    captured = {}
    handle = layer.register_forward_hook(lambda _m, _i, out: captured.setdefault("a", out))
    logits = model(batch)
    handle.remove()
    activations = captured["a"]
    score = logits[torch.arange(len(classes)), torch.tensor(classes)].sum()
    (grads,) = torch.autograd.grad(score, activations)
    weights = grads.mean(dim=(2, 3), keepdim=True)
    cam = F.relu((weights * activations).sum(dim=1, keepdim=True))
    cam = F.interpolate(cam, size=batch.shape[-2:], mode="bilinear", align_corners=False).squeeze(1).detach()
    low = cam.amin(dim=(1, 2), keepdim=True)
    high = cam.amax(dim=(1, 2), keepdim=True)
    return ((cam - low) / (high - low + 1e-7)).numpy()


def test_target_layer_is_the_trunk_when_sa_sits_on_the_last_feature_map():
    for soft_attention in (True, False):
        model = create_model("resnet10t", soft_attention=soft_attention, img_size=64)
        layer, description = gradcam_target_layer(model)
        assert layer is model.trunk and "SA layer sees" in description


def test_target_layer_is_the_tail_when_stages_follow_the_sa_block():
    model = create_model("resnet34", img_size=64)  # SA after layer2; layer3 and layer4 kept in the tail
    layer, description = gradcam_target_layer(model)
    assert layer is model.tail and "tail" in description


def test_grad_cam_equals_a_hand_computation_for_the_predicted_and_a_chosen_class(sa_model_dir: Path, manifest_dir: Path):
    model = load_model(sa_model_dir)
    images = [open_image(str(p)) for p in _test_images(manifest_dir)]
    explainer = Explainer(model, "cpu")
    batch = preprocess_images(images, model.config)

    explained = explainer.explain(images)
    predicted = [model.config.class_names.index(e.predicted) for e in explained]
    expected = _grad_cam_by_hand(model, model.trunk, batch, predicted)
    for e, want in zip(explained, expected):
        assert e.target_class == e.predicted
        assert e.gradcam.max() > 0.5  # a real map, not an all-zero one that would match anything zero
        np.testing.assert_allclose(e.gradcam, want, atol=0.02)  # the package resizes with OpenCV, not torch

    chosen = [c for c in model.config.class_names if c not in {e.predicted for e in explained}][0]
    for_chosen = explainer.explain(images, target_class=chosen)
    expected = _grad_cam_by_hand(model, model.trunk, batch, [model.config.class_names.index(chosen)] * len(images))
    for e, want in zip(for_chosen, expected):
        assert e.target_class == chosen
        np.testing.assert_allclose(e.gradcam, want, atol=0.02)


def test_attention_is_the_models_own_sa_map_and_baselines_have_none(sa_model_dir: Path, baseline_model_dir: Path, manifest_dir: Path):
    images = [open_image(str(p)) for p in _test_images(manifest_dir, 2)]
    model = load_model(sa_model_dir)
    with torch.inference_mode():
        _, maps = model.forward_with_attention(preprocess_images(images, model.config))
    size = model.config.input_size
    want = attention_heatmap(maps, (size, size)).numpy()
    explained = Explainer(model, "cpu").explain(images)
    for e, w in zip(explained, want):
        np.testing.assert_allclose(e.attention, w, atol=1e-6)
        assert e.attention_overlay().size == e.image.size
    baseline = Explainer(load_model(baseline_model_dir), "cpu").explain(images)
    assert all(e.attention is None and e.attention_overlay() is None for e in baseline)
    assert all(e.gradcam.shape == (size, size) for e in baseline)


def test_explain_cli_writes_overlays(tmp_path: Path, sa_model_dir: Path, baseline_model_dir: Path, manifest_dir: Path, capsys):
    paths = _test_images(manifest_dir, 2)
    assert main(["explain", "--model", str(sa_model_dir), *map(str, paths), "--out", str(tmp_path / "sa"), "--device", "cpu"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    assert [line["image"] for line in lines] == [str(p) for p in paths]
    for path in paths:
        for kind in ("input", "attention", "gradcam", "panel"):
            written = tmp_path / "sa" / f"{path.stem}_{kind}.png"
            with Image.open(written) as image:
                assert image.mode == "RGB" and image.width > 0
        with Image.open(tmp_path / "sa" / f"{path.stem}_panel.png") as panel, Image.open(tmp_path / "sa" / f"{path.stem}_input.png") as single:
            assert panel.width > 3 * single.width  # input | attention | Grad-CAM side by side

    assert main(["explain", "--model", str(baseline_model_dir), str(paths[0]), "--out", str(tmp_path / "base"), "--device", "cpu"]) == 0
    assert "no soft attention" in capsys.readouterr().out
    assert sorted(p.name.split("_")[-1] for p in (tmp_path / "base").iterdir()) == ["gradcam.png", "input.png", "panel.png"]


@pytest.mark.parametrize(
    ("extra", "message"),
    [(["--target-class", "melanoma"], "target class 'melanoma'"), ([], "cannot read")],
)
def test_explain_cli_reports_bad_input_in_one_line(tmp_path: Path, sa_model_dir: Path, manifest_dir: Path, capsys, extra, message):
    image = str(_test_images(manifest_dir, 1)[0]) if extra else str(tmp_path / "missing.jpg")
    assert main(["explain", "--model", str(sa_model_dir), image, "--out", str(tmp_path), "--device", "cpu", *extra]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
