"""Fail fast (issue 12, item 1): a run's parameters are checked before anything is scheduled, every bad one
named in one message; the same rules run again as the pipelines' first step, which also checks what only
the cluster sees (buckets, data prefix, a GPU node); the train step's own time limit kills its processes.

The rules and the step run here without kfp; the CLI runs as a subprocess, as a user meets it.
"""

from __future__ import annotations

import http.server
import json
import subprocess
import sys
import threading
import time

import pytest

from skinattn.deadline import DeadlineExceeded, run_with_deadline
from skinattn.run_parameters import (
    RULES,
    ParameterError,
    architecture_names,
    check_parameters,
    train_time_limit_hours,
    validate_parameters,
)
from skinattn.steps.validation import gpu_request_check, validate_run_step
from skinattn_pipelines import PIPELINES, load_pipeline
from skinattn_pipelines.validate import checked_arguments, defaults


def skinattn(*args: str, cwd=None) -> tuple[subprocess.CompletedProcess, float]:
    start = time.monotonic()
    result = subprocess.run([sys.executable, "-m", "skinattn", *args], capture_output=True, text=True, timeout=120,
                            cwd=cwd)  # fmt: skip
    return result, time.monotonic() - start


def _names(report_or_error) -> set[str]:
    return {p.parameter for p in report_or_error.problems}


# ---- the rules ------------------------------------------------------------------------------------------------


def test_architecture_names_read_from_source_are_the_registry():
    """The CLI reads the names without importing torch/timm; they must be exactly what the registry holds."""
    from skinattn.models import list_archs

    assert list(architecture_names()) == list_archs()


@pytest.mark.parametrize("name", sorted(PIPELINES))
def test_every_parameter_has_a_rule_and_the_defaults_pass(name, clean_env):
    """A new pipeline parameter needs a rule (or the checks would silently skip it); a UI form submitted as
    it is must be valid."""
    pipeline = load_pipeline(name)
    assert set(pipeline.component_spec.inputs) <= set(RULES), "parameters without a rule in skinattn.run_parameters"
    assert checked_arguments(name, [], reach="offline") == {}


@pytest.mark.parametrize(
    ("params", "named", "reason"),
    [
        ({"arch": "resnet5O"}, "arch", "did you mean resnet50"),
        ({"data_format": "ham1000"}, "data_format", "choose one of ham10000, isic2017"),
        ({"epochs": 0}, "epochs", "at least 1"),
        ({"batch_size": -2}, "batch_size", "at least 1"),
        ({"lr": 0.0}, "lr", "above 0"),
        ({"lr": float("nan")}, "lr", "above 0"),
        ({"image_size": 8}, "image_size", "between 32 and 1024"),
        ({"seed": -1}, "seed", "between 0"),
        ({"gpus": -1}, "gpus", "at least 0"),
        ({"gpus_per_shard": 2}, "gpus_per_shard", "between 0 and 1"),
        ({"bootstrap": -1}, "bootstrap", "at least 0"),
        ({"num_shards": 0}, "num_shards", "at least 1"),
        ({"workers": -1}, "workers", "at least 0"),
        ({"promotion_metric": "flux"}, "promotion_metric", "higher or lower"),
        ({"promotion_source": "externl"}, "promotion_source", "did you mean external"),
        ({"external_test_format": "isic2019"}, "external_test_format", "choose one of ham10000"),
        ({"external_test_uri": 3}, "external_test_uri", "must be a string"),
        ({"output_format": "xlsx"}, "output_format", "parquet"),
        ({"data_uri": " "}, "data_uri", "empty"),
        ({"soft_attention": "yes"}, "soft_attention", "true or false"),
        ({"train_timeout_hours": -1}, "train_timeout_hours", "at least 0"),
        ({"configs": []}, "configs", "non-empty list"),
        ({"configs": [{"arch": "vgg16", "soft_attention": True}, {"arch": "vgg16", "soft_attention": True}]},
         "configs", "repeats vgg16"),
        ({"configs": [{"arch": "vgg61", "soft_attention": 1}]}, "configs", "did you mean vgg16"),
        ({"seeds": 0}, "seeds", "between 1 and 20"),
        ({"seeds": 21}, "seeds", "between 1 and 20"),
        ({"seeds": 2.5}, "seeds", "whole number"),
        ({"split_protocol": "papr"}, "split_protocol", "did you mean paper"),
        ({"split_protocol": "random"}, "split_protocol", "choose one of grouped, paper"),
    ],
)
def test_each_rule_names_the_parameter_and_the_reason(params, named, reason):
    report = check_parameters(params)
    assert _names(report) == {named}
    assert reason in str(report.problems[0])


def test_one_error_names_every_bad_parameter():
    with pytest.raises(ParameterError) as info:
        validate_parameters("training", {"arch": "resnet5O", "epochs": 0, "lr": -1.0, "gpus": 1, "seed": 3})
    assert _names(info.value) == {"arch", "epochs", "lr"}
    message = str(info.value)
    assert message.startswith("3 bad parameter(s) for the training pipeline")
    assert "arch='resnet5O'" in message and "epochs=0" in message and "lr=-1.0" in message


def test_split_protocols_are_the_splitters():
    """The CLI spells the protocols out instead of importing scikit-learn; they must be the splitter's."""
    from skinattn.data.splits import PROTOCOLS
    from skinattn.run_parameters import SPLIT_PROTOCOLS

    assert SPLIT_PROTOCOLS == PROTOCOLS
    assert check_parameters({"seeds": 20, "split_protocol": "paper"}).problems == []


def test_pretrained_suffixes_are_the_loaders():
    """The CLI spells the weights suffixes out instead of importing torch; they must be the loader's."""
    from skinattn.models.pretrained import FORMATS
    from skinattn.run_parameters import PRETRAINED_SUFFIXES

    assert set(PRETRAINED_SUFFIXES) == set(FORMATS)
    assert len(PRETRAINED_SUFFIXES) == len(FORMATS)


def test_promotion_sources_are_the_gates():
    """The CLI spells the promotion sources out instead of importing the registry; they must be the gate's."""
    from skinattn.registry.gate import PROMOTION_SOURCES as GATE_SOURCES
    from skinattn.run_parameters import PROMOTION_SOURCES

    assert PROMOTION_SOURCES == GATE_SOURCES


def test_external_promotion_needs_an_external_test_set(tmp_path):
    """Issue 14: the gate cannot compare on an external test set that is not evaluated; the set itself is
    checked like the data (here: a missing local folder in the pod), and an empty URI means none."""
    report = check_parameters({"promotion_source": "external", "external_test_uri": " "})
    assert _names(report) == {"promotion_source"} and "set external_test_uri" in str(report.problems[0])
    assert check_parameters({"promotion_source": "internal", "external_test_uri": ""}, reach="pod").problems == []
    missing = str(tmp_path / "no-such-external-set")
    report = check_parameters({"promotion_source": "external", "external_test_uri": missing}, reach="pod")
    assert _names(report) == {"external_test_uri"} and "no such file or folder" in str(report.problems[0])
    with pytest.raises(ParameterError, match="promotion_source='external'.*set external_test_uri"):
        checked_arguments("training", ["promotion_source=external"], reach="offline")


def test_kfp_local_floats_in_lists_are_whole_numbers():
    assert check_parameters({"epochs": 3.0, "configs": [{"arch": "vgg16", "soft_attention": False}]}).problems == []


def test_train_limit_scales_with_epochs_and_stays_inside_the_pod_deadline():
    assert train_time_limit_hours(0, 150) == 1 + 0.25 * 150
    assert train_time_limit_hours(5.5, 150) == 5.5
    ok = check_parameters({"epochs": 150, "train_timeout_hours": 0.0}, train_deadline_hours=168)
    assert ok.problems == []
    too_long = check_parameters({"epochs": 150, "train_timeout_hours": 200.0}, train_deadline_hours=168)
    assert _names(too_long) == {"train_timeout_hours"} and "at most 167" in str(too_long.problems[0])
    derived = check_parameters({"epochs": 1000, "train_timeout_hours": 0.0}, train_deadline_hours=168)
    assert "derived from epochs=1000" in str(derived.problems[0]) and "SKINATTN_TIMEOUT_TRAIN" in str(derived.problems[0])


# ---- where the data is ----------------------------------------------------------------------------------------


def test_local_paths_are_checked_for_local_runs_and_in_the_pod_only(tmp_path):
    missing = str(tmp_path / "no-such-data")
    (tmp_path / "empty").mkdir()
    (tmp_path / "notes.txt").write_text("not an archive")
    for uri, reason in ((missing, "no such file or folder"), (str(tmp_path / "empty"), "folder is empty"),
                        (str(tmp_path / "notes.txt"), "not a folder, a .zip")):  # fmt: skip
        for report in (check_parameters({"data_uri": uri}, reach="client", local_paths=True),
                       check_parameters({"data_uri": uri}, reach="pod")):  # fmt: skip
            assert _names(report) == {"data_uri"} and reason in str(report.problems[0])
    # submit/schedule: a path names the pods' file system, which this machine cannot see
    assert check_parameters({"data_uri": missing}, reach="client").problems == []
    assert check_parameters({"data_uri": missing}, reach="offline").problems == []
    # a registry or an output folder is created when first written
    assert check_parameters({"registry_root": missing, "output_uri": missing}, reach="pod").problems == []


def test_s3_locations_are_probed_with_one_small_request(s3_env):
    from skinattn.storage.s3 import client

    s3 = client()
    s3.create_bucket(Bucket="skinattn-data")
    s3.put_object(Bucket="skinattn-data", Key="ham/HAM10000_metadata.csv", Body=b"x")
    s3.put_object(Bucket="skinattn-data", Key="hamster/other.csv", Body=b"x")
    ok = check_parameters({"data_uri": "s3://skinattn-data/ham", "registry_root": "s3://skinattn-data/registry"},
                          reach="client")  # fmt: skip
    assert ok.problems == [] and any("not empty" in note for note in ok.notes)
    # "ham" must not match "hamster/": the prefix is a folder, as ingest lists it
    empty = check_parameters({"data_uri": "s3://skinattn-data/ha"}, reach="pod")
    assert _names(empty) == {"data_uri"} and "no objects under this prefix" in str(empty.problems[0])
    for reach in ("client", "pod"):
        report = check_parameters({"data_uri": "s3://no-such-bucket/ham", "output_uri": "s3://no-such-bucket/out"},
                                  reach=reach)  # fmt: skip
        assert _names(report) == {"data_uri", "output_uri"}
        assert all("NoSuchBucket" in str(p) for p in report.problems)


def test_an_unreachable_endpoint_warns_from_a_workstation_and_refuses_in_the_pod(monkeypatch):
    # Port 9 (discard) on loopback: nothing listens, the connection is refused at once.
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    start = time.monotonic()
    client = check_parameters({"data_uri": "s3://skinattn/data"}, reach="client")
    assert client.problems == [] and "could not check s3://skinattn/data" in client.warnings[0]
    pod = check_parameters({"data_uri": "s3://skinattn/data"}, reach="pod")
    assert _names(pod) == {"data_uri"} and "S3 request failed" in str(pod.problems[0])
    assert time.monotonic() - start < 30  # one attempt each, no retry storm


def test_s3_is_not_asked_when_nothing_is_configured(monkeypatch, tmp_path):
    for name in ("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    report = check_parameters({"data_uri": "s3://skinattn/data"}, reach="client")
    assert report.problems == [] and report.warnings == [] and "not checked" in report.notes[0]


# ---- the CLI ----------------------------------------------------------------------------------------------------


def test_cli_names_every_bad_parameter_at_once_and_fast(tmp_path):
    result, elapsed = skinattn("pipeline", "run", "--local", "--param", "arch=resnet5O", "--param", "epochs=0",
                               "--pipeline-root", str(tmp_path / "root"))  # fmt: skip
    print(f"skinattn pipeline run --local with 2 bad parameters failed in {elapsed:.2f} s")
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert "arch='resnet5O': unknown architecture (did you mean resnet50?)" in result.stderr
    assert "epochs=0: must be at least 1" in result.stderr
    assert not (tmp_path / "root").exists()  # nothing ran


def test_cli_reports_parse_errors_and_value_errors_together(tmp_path):
    result, _ = skinattn("pipeline", "run", "--local", "--param", "epochs=two", "--param", "gpu=1",
                         "--param", "data_uri=" + str(tmp_path / "missing"), "--param", "lr=0")  # fmt: skip
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "4 bad parameter(s)" in result.stderr
    for expected in ("expected number_integer", "unknown parameter 'gpu'", "no such file or folder", "lr=0.0"):
        assert expected in result.stderr


def test_cli_schedule_and_submit_refuse_before_contacting_the_backend():
    # Port 9: were the backend contacted, the error would say "cannot reach the KFP API".
    for command in (("submit", "--experiment", "e"), ("schedule", "--cron", "0 0 2 * * *")):
        result, _ = skinattn("pipeline", *command, "--host", "http://127.0.0.1:9", "--pipeline", "batch_scoring",
                             "--param", "num_shards=0", "--param", "output_format=xlsx")  # fmt: skip
        assert result.returncode == 2, result.stderr
        assert "num_shards=0" in result.stderr and "output_format='xlsx'" in result.stderr
        assert "cannot reach" not in result.stderr


def test_pipeline_defaults_are_the_signature_defaults():
    assert defaults(load_pipeline("training"))["epochs"] == 150
    assert defaults(load_pipeline("batch_scoring"))["output_uri"] == ""


# ---- the pipelines' first step -----------------------------------------------------------------------------


class _NodesApi(http.server.BaseHTTPRequestHandler):
    """GET /api/v1/nodes as a Kubernetes API server answers it (status and items set by the test)."""

    status = 200
    items: list = []
    seen: list = []

    def do_GET(self):  # noqa: N802 - http.server's name
        type(self).seen.append((self.path, self.headers.get("Authorization")))
        body = json.dumps({"kind": "NodeList", "items": type(self).items}).encode()
        self.send_response(type(self).status)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def nodes_api():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _NodesApi)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    _NodesApi.status, _NodesApi.items, _NodesApi.seen = 200, [], []
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()


def _node(gpus: int, unschedulable: bool = False) -> dict:
    return {"spec": {"unschedulable": unschedulable}, "status": {"allocatable": {"nvidia.com/gpu": str(gpus), "cpu": "8"}}}


def test_gpu_request_is_checked_against_the_pools_nodes(nodes_api):
    check = {"resource": "nvidia.com/gpu", "node_selector": "nvidia.com/gpu.present=true", "api": nodes_api,
             "token": "t0ken"}  # fmt: skip
    _NodesApi.items = [_node(1), _node(4), _node(8, unschedulable=True)]
    problem, note = gpu_request_check("gpus", 4, **check)
    assert problem is None and "4 nvidia.com/gpu fit" in note
    path, auth = _NodesApi.seen[-1]
    assert path == "/api/v1/nodes?labelSelector=nvidia.com%2Fgpu.present%3Dtrue" and auth == "Bearer t0ken"
    problem, _ = gpu_request_check("gpus", 8, **check)  # only the cordoned node has 8
    assert problem is not None and problem.parameter == "gpus" and "the most is 4" in problem.reason
    _NodesApi.items = []  # a pool scaled to zero: an autoscaler may add a node
    assert gpu_request_check("gpus", 8, **check)[0] is None
    _NodesApi.status = 403  # no RBAC to list nodes: said in the log, never a failure
    problem, note = gpu_request_check("gpus", 8, **check)
    assert problem is None and "may not list nodes" in note
    assert gpu_request_check("gpus", 0, **check) == (None, "gpus: no GPU requested")


def test_gpu_request_outside_a_pod_is_not_checked(monkeypatch):
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    problem, note = gpu_request_check("gpus_per_shard", 1, "nvidia.com/gpu", "")
    assert problem is None and "not in a Kubernetes pod" in note


def test_the_step_prints_what_it_checked_and_refuses_with_every_problem(tmp_path, capsys):
    data = tmp_path / "data"
    data.mkdir()
    (data / "HAM10000_metadata.csv").write_text("x")
    params = {"source_uri": str(data), "model": "production", "registry_root": str(tmp_path / "registry"),
              "num_shards": 2, "batch_size": 8, "workers": 0, "gpus_per_shard": 0, "output_format": "csv",
              "output_uri": "", "bootstrap": 0}  # fmt: skip
    validate_run_step("batch_scoring", params, gpu_parameter="gpus_per_shard")
    out = capsys.readouterr().out
    assert f"checked: source_uri: {data} is there" in out and "parameters are valid" in out
    with pytest.raises(ParameterError) as info:
        validate_run_step("batch_scoring", params | {"source_uri": str(tmp_path / "gone"), "num_shards": 0},
                          gpu_parameter="gpus_per_shard")  # fmt: skip
    assert _names(info.value) == {"source_uri", "num_shards"}


# ---- the train step's own limit ------------------------------------------------------------------------------


def test_a_command_past_its_deadline_is_killed_with_its_whole_process_group(tmp_path):
    pid_file = tmp_path / "child.pid"
    # A parent that starts a child and waits: both must die, as torchrun and its workers must.
    script = f"sleep 60 & echo $! > {pid_file}; wait"
    start = time.monotonic()
    with pytest.raises(DeadlineExceeded, match="ran past its time limit"):
        run_with_deadline(["sh", "-c", script], 1.0, "the test command")
    assert time.monotonic() - start < 20
    child = int(pid_file.read_text())
    time.sleep(0.2)
    assert not _alive(child), "the child of the timed-out command outlived it"
    assert run_with_deadline([sys.executable, "-c", "raise SystemExit(3)"], 30, "a quick command") == 3


def _alive(pid: int) -> bool:
    import os

    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie (killed, not yet reaped by init in this container) is not running
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8") as handle:
            return handle.read().split()[2] != "Z"
    except FileNotFoundError:
        return False
