"""components/image.py, components/cluster.py and their env-file parser."""

from __future__ import annotations

import pytest

from skinattn_components import cluster, image
from skinattn_components.envfile import INFRA_DIR as INFRA
from skinattn_components.envfile import ConventionFileError, read_env_file, setting_list


def test_image_defaults_come_from_image_env(clean_env):
    values = read_env_file(INFRA / "image.env")
    assert image.component_image() == values["SKINATTN_IMAGE"]
    assert image.gpu_image() == values["SKINATTN_GPU_IMAGE"]
    assert image.serving_image() == values["SKINATTN_SERVING_IMAGE"]
    # The three roles are distinct images, each with an explicit tag.
    refs = [image.component_image(), image.gpu_image(), image.serving_image()]
    assert len(set(refs)) == 3
    assert all(":" in ref.rsplit("/", 1)[-1] and not ref.endswith(":latest") for ref in refs)


def test_environment_overrides_each_image(clean_env):
    clean_env.setenv("SKINATTN_IMAGE", "registry.example.com/skinattn:dev")
    clean_env.setenv("SKINATTN_GPU_IMAGE", "registry.example.com/skinattn:dev-cuda")
    assert image.component_image() == "registry.example.com/skinattn:dev"
    assert image.gpu_image() == "registry.example.com/skinattn:dev-cuda"
    # An empty variable (e.g. `SKINATTN_IMAGE= make ...`) means "not set", not "empty image name".
    clean_env.setenv("SKINATTN_SERVING_IMAGE", "  ")
    assert image.serving_image() == read_env_file(INFRA / "image.env")["SKINATTN_SERVING_IMAGE"]


def test_gpu_node_pool_convention(clean_env):
    values = read_env_file(INFRA / "cluster.env")
    pool = cluster.gpu_node_pool()
    assert pool.node_selector() == {values["SKINATTN_GPU_NODE_LABEL_KEY"]: values["SKINATTN_GPU_NODE_LABEL_VALUE"]}
    assert pool.toleration() == {
        "key": values["SKINATTN_GPU_TAINT_KEY"],
        "operator": "Equal",
        "value": values["SKINATTN_GPU_TAINT_VALUE"],
        "effect": values["SKINATTN_GPU_TAINT_EFFECT"],
    }
    clean_env.setenv("SKINATTN_GPU_TAINT_KEY", "gpu-pool")
    assert cluster.gpu_node_pool().toleration()["key"] == "gpu-pool"


def test_toleration_keywords_match_kfp_kubernetes(clean_env):
    """The dict is passed as ``kfp.kubernetes.add_toleration(task, **pool.toleration())``."""
    import inspect

    from kfp import kubernetes

    parameters = inspect.signature(kubernetes.add_toleration).parameters
    assert set(cluster.gpu_node_pool().toleration()) <= set(parameters)


def test_bad_taint_effect_is_refused(clean_env):
    clean_env.setenv("SKINATTN_GPU_TAINT_EFFECT", "NoScheduel")
    with pytest.raises(ConventionFileError, match="SKINATTN_GPU_TAINT_EFFECT='NoScheduel'"):
        cluster.gpu_node_pool()


def test_s3_settings(clean_env):
    s3 = cluster.s3_settings()
    assert s3.config_map_keys == ("AWS_ENDPOINT_URL", "AWS_REGION", "SKINATTN_S3_BUCKET")
    assert s3.secret_keys == ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")
    assert s3.config_map != s3.secret
    assert cluster.namespace() != cluster.kfp_namespace()


def test_pipeline_root_is_a_prefix_of_the_project_bucket(clean_env):
    assert cluster.pipeline_root() == read_env_file(INFRA / "cluster.env")["SKINATTN_PIPELINE_ROOT"]
    assert cluster.pipeline_root() == "s3://skinattn/pipeline-root"
    clean_env.setenv("SKINATTN_PIPELINE_ROOT", "s3://other-bucket/kfp")
    assert cluster.pipeline_root() == "s3://other-bucket/kfp"


@pytest.mark.parametrize("root", ["s3://bucket", "s3://bucket/a/b", "gs://bucket/p", "minio://mlpipeline/v2/artifacts",
                                  "s3://bucket/p?region=eu-west-1"])  # fmt: skip
def test_pipeline_roots_the_launcher_accepts(root):
    assert cluster.check_pipeline_root(f" {root} ") == root


@pytest.mark.parametrize("root", ["/mnt/artifacts", "kfp-local", "file:///tmp/x", "https://s3.amazonaws.com/b/p",
                                  "s3://", "s3:///prefix", "S3://bucket/p"])  # fmt: skip
def test_pipeline_roots_the_launcher_cannot_write_are_refused(root, clean_env):
    with pytest.raises(ValueError, match="not an object store URI"):
        cluster.check_pipeline_root(root)
    clean_env.setenv("SKINATTN_PIPELINE_ROOT", root)
    with pytest.raises(ConventionFileError, match="SKINATTN_PIPELINE_ROOT: pipeline root"):
        cluster.pipeline_root()


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("NO_EQUALS_SIGN", "expected KEY=VALUE"),
        ("lower=case", "must be upper case"),
        ('QUOTED="x"', "unquoted"),
        ("EMPTY=", "non-empty"),
        ("SPACED = x", "must be upper case"),
    ],
)
def test_malformed_line_names_file_and_line(tmp_path, line, reason):
    path = tmp_path / "bad.env"
    path.write_text(f"# comment\n\nGOOD=value\n{line}\n", encoding="utf-8")
    with pytest.raises(ConventionFileError, match=rf"bad\.env:4: .*{reason}"):
        read_env_file(path)


def test_duplicate_key_and_missing_file(tmp_path):
    path = tmp_path / "dup.env"
    path.write_text("A=1\nA=2\n", encoding="utf-8")
    with pytest.raises(ConventionFileError, match=r"dup\.env:2: duplicate key A"):
        read_env_file(path)
    with pytest.raises(ConventionFileError, match="cannot read"):
        read_env_file(tmp_path / "missing.env")


def test_list_setting_refuses_empty_item(tmp_path, monkeypatch):
    path = tmp_path / "list.env"
    path.write_text("KEYS=A,B,\n", encoding="utf-8")
    monkeypatch.delenv("KEYS", raising=False)
    with pytest.raises(ConventionFileError, match="empty item"):
        setting_list(path, "KEYS")
