"""Model registry: immutable model versions in a local folder or an S3 bucket, and a production pointer.

Typical use (a pipeline's register step)::

    from skinattn.registry import Registry

    registry = Registry("s3://models/skinattn")          # or a folder; default $SKINATTN_REGISTRY or ./registry
    version = registry.register("out/model", "out/metrics.json", run_id=run_id,
                                data_fingerprint=fingerprint_manifest("out/manifest"))
    decision = registry.promote(version.version, metric="weighted_avg.auc")   # champion/challenger gate
    registry.production()                                 # the current production ModelVersion

Before a pipeline registers a candidate, :func:`compare_with_production` (:mod:`skinattn.registry.gate`)
evaluates production again on the candidate's test set, so that the two numbers it compares are comparable.

Exporting a version to the BentoML model store is not here: it is ``serving/export.py``
(``python -m serving export``), beside the service, because the core library does not import bentoml. See
``docs/registry.md`` for the layout and the guarantees.
"""

from skinattn.registry.core import DEFAULT_ROOT, ROOT_ENV, Registry, default_root, fingerprint_manifest
from skinattn.registry.errors import ObjectNotFound, RegistryError
from skinattn.registry.gate import KEEP, PROMOTE, compare_with_production
from skinattn.registry.metrics import Comparison, compare, flatten_metrics, load_metrics, metric_direction
from skinattn.registry.records import ModelVersion, Promotion, PromotionDecision, StoredFile
from skinattn.registry.object_store import LocalStore, ObjectStore, S3Store, open_store

__all__ = [
    "DEFAULT_ROOT",
    "KEEP",
    "PROMOTE",
    "ROOT_ENV",
    "Comparison",
    "LocalStore",
    "ModelVersion",
    "ObjectNotFound",
    "ObjectStore",
    "Promotion",
    "PromotionDecision",
    "Registry",
    "RegistryError",
    "S3Store",
    "StoredFile",
    "compare",
    "compare_with_production",
    "default_root",
    "fingerprint_manifest",
    "flatten_metrics",
    "load_metrics",
    "metric_direction",
    "open_store",
]
