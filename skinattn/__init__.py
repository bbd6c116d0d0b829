"""skinattn: Soft-Attention CNN classifiers of dermoscopy images.

The core library. It imports neither kfp nor bentoml: the KFP components (``components/``), pipelines
(``pipelines/``) and the BentoML service (``serving/``) are thin wrappers around it.
"""

__version__ = "0.1.0"
