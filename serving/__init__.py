"""The skinattn BentoML service (``serving.service:SkinattnClassifier``) and its request checks.

This folder is not part of the ``skinattn`` package: the core library must not import BentoML. It is
loaded by ``bentoml serve`` / ``bentoml build`` from the repository root (see ``docs/serving.md``).
"""
