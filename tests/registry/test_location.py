"""``Registry.location``: where a version's record lives, as pipeline lineage records it."""

from __future__ import annotations

import json
from pathlib import Path

import boto3

from skinattn.registry import Registry


def test_location_names_the_version_record_on_both_backends(registry_root, model_dir, write_metrics):
    registry = Registry(registry_root)
    first = registry.register(model_dir, write_metrics(accuracy=0.8))
    second = registry.register(model_dir, write_metrics(accuracy=0.9))
    assert registry.location(second).endswith("/versions/000002.json")
    location = registry.location(first)
    if registry_root.startswith("s3://"):
        assert location == f"{registry_root}/versions/000001.json"
        bucket, key = location.removeprefix("s3://").split("/", 1)
        body = boto3.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read()
    else:
        assert Path(location).is_absolute()
        body = Path(location).read_bytes()
    assert json.loads(body)["number"] == 1  # the location holds that version's record


def test_a_relative_folder_root_gives_an_absolute_location(tmp_path, monkeypatch, model_dir, write_metrics):
    monkeypatch.chdir(tmp_path)
    registry = Registry("registry")
    version = registry.register(model_dir, write_metrics(accuracy=0.8))
    assert registry.location(version) == str(tmp_path / "registry" / "versions" / "000001.json")
