"""Data components: ingest (read + validate a collection into a manifest) and prepare (split + balance).

The pattern every component here follows (copy it for new ones):

- ``@dsl.component(base_image=component_image(), install_kfp_package=False)``: the project image already
  holds kfp and skinattn, and the same function runs under ``kfp.local.SubprocessRunner(use_venv=False)``;
- typed inputs/outputs (``Input[Dataset]``, ``Output[Model]``...) whose ``.path`` is a local folder or
  file (KFP copies it from/to the pipeline root, local or S3);
- the body imports its area's steps (``from skinattn.steps import data as steps``; inside the body,
  because KFP ships the function's source) and calls one function with the paths: no logic here.
"""

# No `from __future__ import annotations`: KFP reads the parameter types from the live annotations.
from kfp import dsl
from kfp.dsl import Dataset, Input, Output

from skinattn_components.image import component_image


@dsl.component(base_image=component_image(), install_kfp_package=False)
def ingest(data_uri: str, data_format: str, manifest: Output[Dataset]):
    """Read the collection at ``data_uri`` (folder, .zip or s3://bucket/prefix), decode every image, and write
    the manifest folder; any validation problem fails the step with the problems listed."""
    from skinattn.steps import data as steps

    summary = steps.ingest_step(data_uri, data_format, manifest.path)
    manifest.metadata.update({"images": summary["images"], "format": data_format, "source": data_uri})


@dsl.component(base_image=component_image(), install_kfp_package=False)
def prepare(
    manifest: Input[Dataset], seed: int, image_size: int, prepared: Output[Dataset], split_protocol: str = "grouped"
) -> str:
    """Split (``split_protocol``: grouped by lesion, stratified, or the paper's single-image-lesion test draw),
    balance the training split, and cache the images resized to ``image_size`` px inside the prepared folder.
    Returns the data fingerprint (also in ``prepared``'s metadata): register records it from this string
    instead of downloading the prepared set and its cache."""
    from skinattn.steps import data as steps

    counts = steps.prepare_step(manifest.path, prepared.path, seed=seed, cache_size=image_size, protocol=split_protocol)
    prepared.metadata.update({"images": counts["rows"], "seed": seed, "split_protocol": split_protocol,
                              "data_fingerprint": counts["data_fingerprint"]})  # fmt: skip
    return counts["data_fingerprint"]
