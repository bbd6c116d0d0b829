"""Every architecture builds, cuts the backbone where the paper says, and trains end to end."""

from __future__ import annotations

import pytest
import timm
import torch
from safetensors.torch import save_file

from skinattn.errors import ModelError
from skinattn.models import arch_spec, create_model, list_archs

HEAVY = {"densenet201", "inception_resnet_v2", "vgg16", "resnet50"}
ARCH_PARAMS = [pytest.param(a, marks=pytest.mark.slow) if a in HEAVY else a for a in list_archs()]


def test_paper_archs_and_a_small_one_are_registered():
    assert {"inception_resnet_v2", "densenet201", "resnet34", "resnet50", "vgg16"} <= set(list_archs())
    assert any(arch_spec(a).small for a in list_archs())


@pytest.mark.parametrize("arch", ARCH_PARAMS)
@pytest.mark.parametrize("soft_attention", [True, False], ids=["sa", "baseline"])
def test_native_size_forward_and_insertion_shape(arch, soft_attention):
    spec = arch_spec(arch)
    model = create_model(arch, soft_attention=soft_attention).eval()
    x = torch.randn(2, 3, spec.input_size, spec.input_size)
    with torch.no_grad():
        t = model.trunk(x)
        logits = model(x)
    assert tuple(t.shape[1:]) == spec.insertion_shape
    assert logits.shape == (2, 7)
    assert model.config.input_size == spec.input_size
    if soft_attention:
        c = spec.insertion_shape[0]
        assert sum(p.numel() for p in model.attention_layer.parameters()) == 16 * (9 * c + 1) + 1
        with torch.no_grad():
            logits_sa, maps = model.forward_with_attention(x)
        torch.testing.assert_close(logits_sa, logits)
        assert maps.shape == (2, 16, *spec.insertion_shape[1:])
    else:
        assert model.attention_layer is None
        with pytest.raises(ModelError, match="no attention maps"):
            model.forward_with_attention(x)


def test_paper_insertion_sizes():
    # The feature sizes Sec. 3.3 names for each backbone.
    assert arch_spec("inception_resnet_v2").insertion_shape[1:] == (8, 8)
    assert arch_spec("inception_resnet_v2").input_size == 299
    assert arch_spec("densenet201").insertion_shape[1:] == (7, 7)
    assert arch_spec("resnet50").insertion_shape[1:] == (7, 7)
    assert arch_spec("resnet34").insertion_shape[1:] == (28, 28)
    assert arch_spec("vgg16").insertion_shape[1:] == (28, 28)


def test_resnet34_keeps_later_stages_at_half_resolution():
    model = create_model("resnet34").eval()
    seen = {}

    def record_input(module, inputs, output):
        seen["layer3_in"] = inputs[0].shape

    model.tail[1].register_forward_hook(record_input)
    with torch.no_grad():
        model(torch.randn(1, 3, 224, 224))
    assert seen["layer3_in"] == (1, 128, 14, 14)  # projected back from 256 channels, half of 28x28


def test_gradients_reach_gamma_and_the_backbone():
    model = create_model("resnet18", img_size=64).train()
    loss = torch.nn.functional.cross_entropy(model(torch.randn(4, 3, 64, 64)), torch.tensor([0, 1, 2, 3]))
    loss.backward()
    assert model.attention_layer.gamma.grad is not None and model.attention_layer.gamma.grad.abs() > 0
    first_conv = model.trunk[0].weight
    assert first_conv.grad is not None and first_conv.grad.abs().sum() > 0


def test_small_image_size_and_custom_classes():
    model = create_model("resnet10t", num_classes=2, class_names=["nevus", "seborrheic_keratosis"], img_size=48)
    assert model.config.class_names == ("nevus", "seborrheic_keratosis")
    assert model(torch.randn(1, 3, 48, 48)).shape == (1, 2)


def test_model_carries_its_preprocessing_facts():
    irv2 = arch_spec("inception_resnet_v2")
    model = create_model("resnet18", img_size=64)
    assert model.config.mean == pytest.approx((0.485, 0.456, 0.406))
    assert model.config.class_names == ("akiec", "bcc", "bkl", "df", "mel", "nv", "vasc")
    # timm's IRv2 expects the [-1, 1] scaling the authors used for every backbone.
    assert timm.create_model(irv2.timm_name).pretrained_cfg["mean"] == (0.5, 0.5, 0.5)


def test_pretrained_from_local_file(tmp_path):
    torch.manual_seed(3)
    source = timm.create_model("resnet18")
    weights = tmp_path / "resnet18.safetensors"
    save_file({k: v.contiguous() for k, v in source.state_dict().items()}, str(weights))
    model = create_model("resnet18", pretrained=weights, img_size=64)
    torch.testing.assert_close(model.trunk[0].weight, source.conv1.weight)
    torch.testing.assert_close(model.trunk[-1][1].conv2.weight, source.layer4[1].conv2.weight)


def test_pretrained_file_of_another_arch_is_refused(tmp_path):
    weights = tmp_path / "resnet10t.safetensors"
    save_file({k: v.contiguous() for k, v in timm.create_model("resnet10t").state_dict().items()}, str(weights))
    with pytest.raises(ModelError, match="do not fit"):
        create_model("resnet18", pretrained=weights)


def test_bad_arguments_give_clear_errors(tmp_path):
    with pytest.raises(ModelError, match="unknown architecture 'resnet9000'"):
        create_model("resnet9000")
    with pytest.raises(ModelError, match="unknown option"):
        create_model("resnet18", colour="blue")
    with pytest.raises(ModelError, match="not found"):
        create_model("resnet18", pretrained=tmp_path / "missing.safetensors")
    with pytest.raises(ModelError, match="class names"):
        create_model("resnet18", num_classes=3, class_names=["a", "b"])
