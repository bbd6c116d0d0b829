"""``skinattn pipeline submit|upload|schedule`` end to end over HTTP, against a stand-in KFP API server.

Real: our CLI and ``pipelines/remote.py``, the compiled pipeline packages, ``kfp.Client`` 2.17 and its
generated ``kfp_server_api`` REST client, and HTTP on 127.0.0.1. Stand-in: the KFP v2beta1 API server
(``_kfp_stand_in.py``), which records every request and keeps just enough state (experiments, pipelines,
versions) to answer. The tests assert on what reached the server. This complements
``test_cli_arguments.py``, which checks the keyword arguments our builders hand to ``kfp.Client``.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest
import yaml

from _kfp_stand_in import API, KfpStandIn
from skinattn_components.cluster import gpu_node_pool, pipeline_root, pipeline_service_account
from skinattn_pipelines import load_pipeline
from skinattn.cli import main

TRAINING_NAME = load_pipeline("training").name


@pytest.fixture
def kfp_api(clean_env, tmp_path):
    """A running stand-in KFP API; no KFP client setting of the caller's shell or home reaches the client."""
    for key in [k for k in os.environ if k.startswith("KF_PIPELINES_")]:
        clean_env.delenv(key)
    clean_env.setenv("HOME", str(tmp_path))  # kfp.Client reads ~/.config/kfp/context.json
    with KfpStandIn() as server:
        yield server
        assert not server.unknown_calls(), f"kfp.Client called endpoints the stand-in lacks: {server.unknown_calls()}"


def skinattn_in_process(capsys, *args: str) -> tuple[int, str, str]:
    """Run the real CLI entry point in this process (saves the kfp import of a subprocess)."""
    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def root_parameters(spec: dict) -> dict:
    return spec["root"]["inputDefinitions"]["parameters"]


def test_submit_creates_the_experiment_then_a_run_of_the_compiled_spec(kfp_api, capsys):
    completed = subprocess.run(
        [sys.executable, "-m", "skinattn", "pipeline", "submit", "--host", kfp_api.url, "--experiment", "skin-exp",
         "--run-name", "nightly-check", "--param", "epochs=3", "--param", "arch=resnet18",
         "--param", "soft_attention=false"],
        capture_output=True, text=True, timeout=120, env=os.environ.copy(),
    )  # fmt: skip
    assert completed.returncode == 0, completed.stderr
    (run_id,) = kfp_api.runs
    (experiment_id,) = kfp_api.experiments
    assert f"submitted run {run_id} to {kfp_api.url} (experiment skin-exp)" in completed.stdout

    # kfp.Client looked the experiment up by name, found none, and created it.
    (lookup,) = kfp_api.calls("GET", f"{API}/experiments")
    (predicate,) = json.loads(lookup.query["filter"][0])["predicates"]
    assert (predicate["key"], predicate["stringValue"]) == ("display_name", "skin-exp")
    (created,) = kfp_api.calls("POST", f"{API}/experiments")
    assert created.json["display_name"] == "skin-exp"

    (run_request,) = kfp_api.calls("POST", f"{API}/runs")
    run = run_request.json
    assert run["experiment_id"] == experiment_id
    assert run["display_name"] == "nightly-check"
    assert run["service_account"] == pipeline_service_account()
    assert run["runtime_config"]["parameters"] == {"epochs": 3, "arch": "resnet18", "soft_attention": False}
    # Artifacts go to the project's bucket (infra/cluster.env), not KFP's bundled store.
    assert run["runtime_config"]["pipeline_root"] == pipeline_root() == "s3://skinattn/pipeline-root"
    # The run carries the compiled spec itself (no upload): our pipeline, with the parameters declared.
    spec = run["pipeline_spec"]["pipeline_spec"]
    assert spec["pipelineInfo"]["name"] == TRAINING_NAME
    assert {"epochs", "arch", "soft_attention"} <= set(root_parameters(spec))
    # ... and the kfp.kubernetes settings (GPU pool toleration) travel in the platform spec next to it.
    assert gpu_node_pool().taint_key in json.dumps(run["pipeline_spec"]["platform_spec"])

    # A second submit to the same experiment reuses it; --pipeline-root puts this run's artifacts elsewhere.
    code, out, err = skinattn_in_process(
        capsys, "pipeline", "submit", "--host", kfp_api.url, "--experiment", "skin-exp", "--param", "epochs=1",
        "--pipeline-root", "s3://scratch-bucket/tries",
    )  # fmt: skip
    assert code == 0, err
    assert len(kfp_api.calls("POST", f"{API}/experiments")) == 1
    second = kfp_api.calls("POST", f"{API}/runs")[-1].json
    assert second["experiment_id"] == experiment_id
    assert second["runtime_config"]["parameters"] == {"epochs": 1}
    assert second["runtime_config"]["pipeline_root"] == "s3://scratch-bucket/tries"
    assert len(kfp_api.runs) == 2


@pytest.mark.parametrize("command", [["submit", "--experiment", "e"], ["upload"], ["schedule", "--cron", "0 0 2 * * *"]])
def test_a_pipeline_root_the_launcher_cannot_write_is_refused_before_any_request(kfp_api, capsys, command):
    code, out, err = skinattn_in_process(
        capsys, "pipeline", *command, "--host", kfp_api.url, "--pipeline-root", "/mnt/local/folder"
    )
    assert code == 2
    assert "--pipeline-root: pipeline root '/mnt/local/folder' is not an object store URI" in err
    assert kfp_api.requests == []


def test_upload_creates_the_pipeline_then_new_versions(kfp_api, capsys):
    code, out, err = skinattn_in_process(capsys, "pipeline", "upload", "--host", kfp_api.url)
    assert code == 0, err
    (pipeline_id,) = kfp_api.pipelines
    (first_version,) = kfp_api.versions.values()
    # The printed version is the one the server holds (the first version is named by the backend).
    first_id, first_name = first_version["pipeline_version_id"], first_version["display_name"]
    assert f"pipeline {pipeline_id}, version {first_id} ({first_name})" in out

    (upload,) = kfp_api.calls("POST", f"{API}/pipelines/upload")
    assert upload.query["name"] == [TRAINING_NAME]
    assert upload.query["description"] == [load_pipeline("training").description]
    file_name, package = upload.files["uploadfile"]
    assert file_name == "training.yaml"
    spec, platform = yaml.safe_load_all(package)
    assert spec["pipelineInfo"]["name"] == TRAINING_NAME
    assert {"data_uri", "epochs", "gpus", "promotion_metric"} <= set(root_parameters(spec))
    assert gpu_node_pool().taint_key in json.dumps(platform)
    # The upload API takes no pipeline root: it is compiled into the version, for runs started from the UI.
    assert spec["defaultPipelineRoot"] == pipeline_root()

    code, out, err = skinattn_in_process(capsys, "pipeline", "upload", "--host", kfp_api.url, "--version-name", "v2",
                                         "--pipeline-root", "s3://skinattn/other-root")  # fmt: skip
    assert code == 0, err
    (new_version,) = kfp_api.calls("POST", f"{API}/pipelines/upload_version")
    assert new_version.query["pipelineid"] == [pipeline_id]
    assert new_version.query["name"] == ["v2"]
    new_spec = next(yaml.safe_load_all(new_version.files["uploadfile"][1]))
    assert new_spec["pipelineInfo"]["name"] == TRAINING_NAME
    assert new_spec["defaultPipelineRoot"] == "s3://skinattn/other-root"
    assert len(kfp_api.pipelines) == 1 and len(kfp_api.versions) == 2
    (v2,) = [v for v in kfp_api.versions.values() if v["display_name"] == "v2"]
    assert f"pipeline {pipeline_id}, version {v2['pipeline_version_id']} (v2)" in out

    # The backend refuses a duplicate version name: one line, exit 2, the server's reason.
    code, out, err = skinattn_in_process(capsys, "pipeline", "upload", "--host", kfp_api.url, "--version-name", "v2")
    assert code == 2
    refused = r"skinattn pipeline: error: the Kubeflow Pipelines backend refused: HTTP 409 .*already exists.*\n"
    assert re.fullmatch(refused, err)
    assert len(kfp_api.versions) == 2


def test_schedule_uploads_a_version_and_creates_a_recurring_run_of_it(kfp_api, capsys):
    code, out, err = skinattn_in_process(
        capsys, "pipeline", "schedule", "--host", kfp_api.url, "--cron", "0 0 2 * * *", "--experiment", "nightly",
        "--max-concurrency", "2", "--param", "epochs=4", "--param", "data_uri=s3://bucket/ham",
    )  # fmt: skip
    assert code == 0, err
    (pipeline_id,) = kfp_api.pipelines
    (version_id,) = kfp_api.versions
    (experiment_id,) = [e["experiment_id"] for e in kfp_api.experiments.values() if e["display_name"] == "nightly"]
    (recurring_id,) = kfp_api.recurring_runs
    assert f"recurring run {recurring_id} (training-nightly): '0 0 2 * * *' in experiment nightly" in out

    (request,) = kfp_api.calls("POST", f"{API}/recurringruns")
    recurring = request.json
    assert recurring["trigger"] == {"cron_schedule": {"cron": "0 0 2 * * *"}}
    assert recurring["pipeline_version_reference"] == {"pipeline_id": pipeline_id, "pipeline_version_id": version_id}
    assert "pipeline_spec" not in recurring  # it runs the uploaded version, which the UI shows
    assert recurring["experiment_id"] == experiment_id
    assert recurring["display_name"] == "training-nightly"
    assert recurring["service_account"] == pipeline_service_account()
    assert recurring["runtime_config"]["parameters"] == {"epochs": 4, "data_uri": "s3://bucket/ham"}
    assert (recurring["mode"], recurring["max_concurrency"], recurring["no_catchup"]) == ("ENABLE", 2, True)
    # Its runs keep their artifacts in the project's bucket: set on the recurring run and in the version.
    assert recurring["runtime_config"]["pipeline_root"] == pipeline_root()
    (upload,) = kfp_api.calls("POST", f"{API}/pipelines/upload")
    assert next(yaml.safe_load_all(upload.files["uploadfile"][1]))["defaultPipelineRoot"] == pipeline_root()
    # The upload happened before the recurring run that references it.
    paths = [r.path for r in kfp_api.requests]
    assert paths.index(f"{API}/pipelines/upload") < paths.index(f"{API}/recurringruns")


def test_schedule_refuses_a_five_field_cron_before_contacting_the_backend(kfp_api, capsys):
    code, out, err = skinattn_in_process(capsys, "pipeline", "schedule", "--host", kfp_api.url, "--cron", "0 2 * * *")
    assert code == 2
    assert "6 fields, seconds first" in err and "prepend '0 '" in err
    assert kfp_api.requests == []
