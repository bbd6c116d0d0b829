"""Training Soft-Attention classifiers: typed config, datasets with online augmentation, the loop with
per-epoch checkpoints and exact resume, and the CPU / CUDA / DDP runtime switches."""

from skinattn.training.config import ConfigError, TrainConfig, load_config, save_config
from skinattn.training.trainer import TrainResult, resume_config, train

__all__ = ["ConfigError", "TrainConfig", "TrainResult", "load_config", "resume_config", "save_config", "train"]
