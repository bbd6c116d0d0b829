"""Batch scoring of image archives with a saved or registered model: resumable, sharded, bounded in memory.

One job per module:

- :mod:`~skinattn.scoring.listing`: what to score (folder, .zip or s3:// prefix; ids; refused entries),
- :mod:`~skinattn.scoring.labels`: true classes from an ``isic image download`` metadata.csv,
- :mod:`~skinattn.scoring.archives`: reading entries, tolerating unsafe zip members one by one,
- :mod:`~skinattn.scoring.shards`: splitting a listing into shard manifests,
- :mod:`~skinattn.scoring.dataset`: decoding in DataLoader workers, batches that never straddle chunks,
- :mod:`~skinattn.scoring.checkpoint`: committed chunks, so that a killed run resumes exactly once,
- :mod:`~skinattn.scoring.merge`: chunks or shard outputs into one predictions + one errors file,
- :mod:`~skinattn.scoring.evaluation_output`: the evaluation of a labelled archive,
- :mod:`~skinattn.scoring.scorer`: the loop and the entry points below.

A pipeline: ``list_archive`` → ``write_shard_manifests`` → ``score_shard`` per shard → ``merge_outputs``.
See ``docs/scoring.md``.
"""

from skinattn.scoring.listing import Listing, ScoreItem, list_archive
from skinattn.scoring.model_source import ResolvedModel, resolve_model
from skinattn.scoring.outputs import OutputPaths
from skinattn.scoring.scorer import ScoreResult, ScoreSettings, merge_outputs, score_shard, score_source
from skinattn.scoring.shards import ShardManifest, parse_shard, split_shards, write_shard_manifests

__all__ = [
    "Listing",
    "OutputPaths",
    "ResolvedModel",
    "ScoreItem",
    "ScoreResult",
    "ScoreSettings",
    "ShardManifest",
    "list_archive",
    "merge_outputs",
    "parse_shard",
    "resolve_model",
    "score_shard",
    "score_source",
    "split_shards",
    "write_shard_manifests",
]
