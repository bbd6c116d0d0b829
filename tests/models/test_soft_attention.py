"""The SA layer against Eq. (1) of the paper, recomputed independently with NumPy loops."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from skinattn.models import SoftAttention, SoftAttentionBlock


def reference_soft_attention(t: np.ndarray, weight: np.ndarray, bias: np.ndarray, gamma: float, relu: bool = False):
    """Eq. (1) written out: 3x3 'same' correlation per head, spatial softmax per head, sum, scale."""
    b, c, h, w = t.shape
    k = weight.shape[0]
    padded = np.pad(t, ((0, 0), (0, 0), (1, 1), (1, 1)))
    logits = np.zeros((b, k, h, w))
    for head in range(k):
        logits[:, head] = bias[head]
        for di in range(3):
            for dj in range(3):
                window = padded[:, :, di : di + h, dj : dj + w]  # (b, c, h, w)
                logits[:, head] += np.einsum("bchw,c->bhw", window, weight[head, :, di, dj])
    if relu:
        logits = np.maximum(logits, 0)
    maps = np.zeros_like(logits)
    for n in range(b):
        for head in range(k):
            flat = logits[n, head].ravel()
            e = np.exp(flat - flat.max())
            maps[n, head] = (e / e.sum()).reshape(h, w)
    alpha = maps.sum(axis=1, keepdims=True)
    return gamma * alpha * t, maps


@pytest.mark.parametrize("relu", [False, True])
def test_matches_independent_reference(relu):
    torch.manual_seed(0)
    layer = SoftAttention(in_channels=5, heads=4, gamma_init=0.3, relu_logits=relu).double()
    t = torch.randn(2, 5, 6, 7, dtype=torch.float64)
    f_sa, maps = layer(t)
    expected_f, expected_maps = reference_soft_attention(
        t.numpy(), layer.conv.weight.detach().numpy(), layer.conv.bias.detach().numpy(), layer.gamma.item(), relu
    )
    assert f_sa.shape == t.shape and maps.shape == (2, 4, 6, 7)
    np.testing.assert_allclose(maps.detach().numpy(), expected_maps, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(f_sa.detach().numpy(), expected_f, rtol=1e-10, atol=1e-12)


def test_relu_option_changes_the_result():
    torch.manual_seed(1)
    t = torch.randn(1, 3, 5, 5)
    plain = SoftAttention(3, heads=16)
    with_relu = SoftAttention(3, heads=16, relu_logits=True)
    with_relu.load_state_dict(plain.state_dict())
    assert not torch.allclose(plain(t)[1], with_relu(t)[1])


def test_each_map_sums_to_one_and_alpha_mean_is_k_over_hw():
    layer = SoftAttention(8)
    _, maps = layer(torch.randn(3, 8, 7, 7) * 10)
    torch.testing.assert_close(maps.sum(dim=(2, 3)), torch.ones(3, 16))
    alpha = maps.sum(dim=1)
    torch.testing.assert_close(alpha.mean(dim=(1, 2)), torch.full((3,), 16 / 49))


def test_gamma_starts_at_0_01_and_learns():
    layer = SoftAttention(4)
    assert layer.gamma.item() == pytest.approx(0.01)
    assert layer.gamma.requires_grad
    f_sa, _ = layer(torch.randn(2, 4, 5, 5))
    f_sa.square().sum().backward()
    assert layer.gamma.grad is not None and layer.gamma.grad.abs().item() > 0
    assert layer.conv.weight.grad.abs().sum().item() > 0


@pytest.mark.parametrize("channels", [1, 128, 512])
def test_parameter_count(channels):
    layer = SoftAttention(channels)
    assert sum(p.numel() for p in layer.parameters()) == 16 * (9 * channels + 1) + 1


def test_block_pools_with_ceil_mode_and_concatenates():
    block = SoftAttentionBlock(6, dropout=0.0).eval()
    t = torch.randn(2, 6, 7, 7)
    fused, maps = block(t)
    assert fused.shape == (2, 12, 4, 4)  # ceil(7 / 2) = 4, as Keras 'same' pooling
    assert maps.shape == (2, 16, 7, 7)
    f_sa, _ = block.attention(t)
    pooled_t = torch.nn.functional.max_pool2d(t, 2, ceil_mode=True)
    pooled_sa = torch.nn.functional.max_pool2d(f_sa, 2, ceil_mode=True)
    torch.testing.assert_close(fused, torch.relu(torch.cat([pooled_sa, pooled_t], dim=1)))


def test_block_dropout_is_active_in_training_only():
    block = SoftAttentionBlock(4, dropout=0.5)
    t = torch.rand(1, 4, 8, 8) + 0.1
    torch.manual_seed(0)
    train_out, _ = block.train()(t)
    eval_out, _ = block.eval()(t)
    assert (train_out == 0).float().mean() > 0.2
    assert (eval_out == 0).float().mean() == 0


def test_rejects_nonsense_sizes():
    with pytest.raises(ValueError):
        SoftAttention(0)
