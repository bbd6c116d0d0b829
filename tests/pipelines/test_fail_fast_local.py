"""A wrong data location fails a whole pipeline run in seconds under kfp.local (issue 12, item 1): the first
step refuses it, nothing else starts, nothing is retried. Bypasses the CLI on purpose, as a run started
from the KFP UI does: this is the pipeline's own check.
"""

from __future__ import annotations

import time

import pytest

from skinattn_pipelines.local import run_local

CASES = {
    "training": ("validate-training-run", "data_uri",
                 {"arch": "resnet10t", "image_size": 32, "epochs": 1, "gpus": 0, "bootstrap": 0}),
    "batch_scoring": ("validate-batch-scoring-run", "source_uri", {"num_shards": 2, "output_format": "csv"}),
}  # fmt: skip


@pytest.mark.parametrize("name", sorted(CASES))
def test_a_missing_data_location_fails_the_run_at_its_first_step(name, tmp_path, capfd):
    first, location, params = CASES[name]
    missing = str(tmp_path / "no-such-collection")
    params = params | {location: missing, "registry_root": str(tmp_path / "registry")}
    start = time.monotonic()
    with pytest.raises(RuntimeError, match=f"Inner task failed: .*{first}") as info:
        run_local(name, params, tmp_path / "root")
    elapsed = time.monotonic() - start
    logs = capfd.readouterr()
    with capfd.disabled():
        print(f"\nkfp.local {name} run with a missing {location} failed in {elapsed:.2f} s")
    assert f"{location}='{missing}': no such file or folder" in logs.out + logs.err
    assert "ingest" not in str(info.value) and "shard-archive" not in str(info.value)
    assert elapsed < 60  # was about 3.5 minutes: ingest failed, then waited 30 s + 60 s + 120 s for retries
