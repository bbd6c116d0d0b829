"""Kubeflow Pipelines components of skinattn, and the settings they share with ``infra/``.

This folder sits beside the installed ``skinattn`` package on purpose: it is used where pipelines are
compiled (a checkout of the repository), never inside the container images, whose component bodies only
import ``skinattn``.
"""
