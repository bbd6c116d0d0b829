"""Steps of the data components (``components/data.py``): ingest a collection, prepare it for training."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from skinattn.errors import DataError


def ingest_step(data_uri: str, data_format: str, out: str | Path) -> dict[str, Any]:
    """Read and validate a collection into a manifest folder; refuse (DataError) when validation failed.

    Rows with problems are never dropped silently: any problem fails the step with every problem listed,
    so a pipeline never trains on a partly broken data set without someone deciding so.
    """
    from skinattn.data.ingest import ingest, summarise

    result = ingest(data_uri, data_format, out, on_error="fail", progress=False)
    print(summarise(result.report))
    if not result.ok:
        raise DataError(f"ingest of {data_uri} ({data_format}) failed validation; see {result.report_path}")
    return {"images": int(result.report["rows_written"]), "status": result.status}


def prepare_step(
    manifest: str | Path, out: str | Path, seed: int, cache_size: int | None, protocol: str = "grouped"
) -> dict[str, Any]:
    """Split (``protocol``: grouped by lesion, stratified, or ``paper``; see ``skinattn.data.splits``),
    balance train, and build the resize cache at ``cache_size``.

    Building the cache here puts it inside the prepared data set, so training finds it and every retry or
    cached re-run of the train step skips the decoding. Returns the counts plus ``data_fingerprint`` (the
    registry's fingerprint of the prepared manifest: every image, label and split), computed here so that the
    register step receives a string instead of downloading the prepared set, resize cache included.
    """
    from skinattn.data.balance import BalanceSpec
    from skinattn.data.prepare import prepare
    from skinattn.data.splits import SplitSpec
    from skinattn.registry import fingerprint_manifest

    result = prepare(
        manifest, out, SplitSpec(protocol=protocol, seed=seed), BalanceSpec(seed=seed), cache_size=cache_size or None, progress=False
    )
    print(result.table)
    return result.counts | {"data_fingerprint": fingerprint_manifest(out)}
