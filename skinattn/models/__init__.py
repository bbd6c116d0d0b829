"""Soft-Attention CNNs (Datta et al., 2021): the SA layer, the SA head and the backbones they go into."""

from skinattn.models import archs  # noqa: F401  (registers every architecture)
from skinattn.models._registry import arch_spec, list_archs
from skinattn.models.config import ModelConfig
from skinattn.models.factory import create_model, model_from_config
from skinattn.models.network import SoftAttentionNet
from skinattn.models.sa_block import SoftAttentionBlock
from skinattn.models.soft_attention import SoftAttention

__all__ = [
    "ModelConfig",
    "SoftAttention",
    "SoftAttentionBlock",
    "SoftAttentionNet",
    "arch_spec",
    "create_model",
    "list_archs",
    "model_from_config",
]

from skinattn.models.heatmap import attention_heatmap, overlay  # noqa: E402
from skinattn.models.preprocess import eval_transform, preprocess_images  # noqa: E402
from skinattn.models.weights import load_model, read_card, save_model  # noqa: E402
from skinattn.models.calibration import calibrated_probabilities, describe_calibration, read_calibration  # noqa: E402

__all__ += ["attention_heatmap", "eval_transform", "load_model", "overlay", "preprocess_images", "read_card", "save_model"]
__all__ += ["calibrated_probabilities", "describe_calibration", "read_calibration"]
