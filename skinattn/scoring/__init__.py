"""Batch scoring of image archives with a saved or registered model: resumable, sharded, bounded in memory.

One job per module:

- :mod:`~skinattn.scoring.listing`: what to score (folder, .zip or s3:// prefix through :mod:`skinattn.storage`; ids; refused entries),
- :mod:`~skinattn.scoring.labels`: true classes from an ``isic image download`` metadata.csv,
- :mod:`~skinattn.scoring.model_source`: which model (a folder, or a registry version pinned once),
- :mod:`~skinattn.scoring.shards`: splitting a listing into shard manifests, and putting scored shards
  back in order (refusing a missing, repeated or foreign one) before they are merged,
- :mod:`~skinattn.scoring.dataset`: decoding in DataLoader workers, batches that never straddle chunks,
- :mod:`~skinattn.scoring.checkpoint`: committed chunks, so that a killed run resumes exactly once,
- :mod:`~skinattn.scoring.merge`: chunks or shard outputs into one predictions + one errors file,
- :mod:`~skinattn.scoring.evaluation_output`: the evaluation of a labelled archive,
- :mod:`~skinattn.scoring.drift`: the predictions against the reference stored with the model (PSI,
  chi-square, a plain-language flag; ``<stem>_drift.json`` and ``.png``),
- :mod:`~skinattn.scoring.scorer`: the loop and the entry points below.

A pipeline: ``pin_model`` and ``list_archive`` → ``write_shard_manifests`` → ``score_shard`` per shard →
``shards_in_order`` → ``merge_outputs``, which is what the batch-scoring pipeline's steps
(:mod:`skinattn.steps.scoring`) do.
See ``docs/scoring.md``.
"""

from skinattn.scoring.listing import Listing, ScoreItem, list_archive
from skinattn.scoring.model_source import PinnedModel, ResolvedModel, pin_model, resolve_model
from skinattn.scoring.outputs import OutputPaths
from skinattn.scoring.scorer import ScoreResult, ScoreSettings, merge_outputs, score_shard, score_source
from skinattn.scoring.shards import ShardManifest, parse_shard, split_shards, write_shard_manifests

__all__ = [
    "Listing",
    "OutputPaths",
    "PinnedModel",
    "ResolvedModel",
    "ScoreItem",
    "ScoreResult",
    "ScoreSettings",
    "ShardManifest",
    "list_archive",
    "merge_outputs",
    "parse_shard",
    "pin_model",
    "resolve_model",
    "score_shard",
    "score_source",
    "split_shards",
    "write_shard_manifests",
]
