"""Parameters, cron validation and the kfp.Client arguments of submit/upload/schedule, built without a cluster.

What these commands send is checked here as the keyword arguments the pure builders return, and the
failure paths are run for real (bad input, unreachable host); test_remote_http.py runs the same commands
through kfp.Client over HTTP against a stand-in API server.
"""

from __future__ import annotations

import datetime as dt
import subprocess
import sys

import pytest

from skinattn_components.cluster import pipeline_service_account
from skinattn_pipelines import PipelineError, load_pipeline
from skinattn_pipelines.cron import validate_cron
from skinattn_pipelines.params import check_required, parse_params
from skinattn_pipelines.remote import default_version_name, recurring_run_arguments, run_arguments


def skinattn(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "skinattn", *args], capture_output=True, text=True, timeout=120)


def test_params_are_typed_from_the_pipeline_signature():
    training = load_pipeline("training")
    args = parse_params(training, ["epochs=2", "soft_attention=false", "lr=1e-3", "arch=resnet18", "seed=7", "data_uri=0001"])
    assert args == {"epochs": 2, "soft_attention": False, "lr": 0.001, "arch": "resnet18", "seed": 7, "data_uri": "0001"}
    assert isinstance(args["lr"], float)
    ablation = load_pipeline("ablation")
    configs = parse_params(ablation, ["configs=[{arch: resnet10t, soft_attention: true}]"])["configs"]
    assert configs == [{"arch": "resnet10t", "soft_attention": True}]


@pytest.mark.parametrize(
    ("item", "message"),
    [
        ("epochs=two", "expected number_integer"),
        ("soft_attention=3", "expected boolean"),
        ("gpu=1", "unknown parameter 'gpu'"),
        ("epochs", "expected key=value"),
    ],
)
def test_bad_params_are_refused_with_the_reason(item, message):
    with pytest.raises(PipelineError, match=message):
        parse_params(load_pipeline("training"), [item])


def test_every_training_parameter_has_a_default():
    check_required(load_pipeline("training"), {})  # the UI form can be submitted as it is


@pytest.mark.parametrize(
    "cron", ["0 0 2 * * *", "0 30 3 * * MON", "*/30 * * * * ?", "0 0 0 1,15 JAN-JUN *", "0 0 */6 * * 1-5", "@daily", "@every 6h"]
)
def test_valid_crons(cron):
    assert validate_cron(f"  {cron} ") == cron


@pytest.mark.parametrize(
    ("cron", "message"),
    [
        ("0 2 * * *", "5 field.*prepend '0 '"),
        ("0 0 24 * * *", "hour field '24': 24 is outside 0-23"),
        ("0 60 2 * * *", "minute field '60'"),
        ("0 0 2 0 * *", "day-of-month field '0'"),
        ("0 0 2 * 13 *", "month field '13'"),
        ("0 0 2 * * FUNDAY", "day-of-week field 'FUNDAY'"),
        ("0 0 5-2 * * *", "runs backwards"),
        ("0 */0 * * * *", "step '0'"),
        ("@sometimes", "unknown descriptor"),
        ("", "0 field"),
    ],
)
def test_invalid_crons_explain_the_format(cron, message):
    with pytest.raises(PipelineError, match=message) as info:
        validate_cron(cron)
    assert "6 fields, seconds first" in str(info.value)


# What submit/upload/schedule send to the backend is checked over HTTP against a KFP API stand-in
# (test_remote_http.py); here only the refusals that happen before any request, and the version naming.


def test_refusals_before_any_request_and_default_version_names():
    with pytest.raises(PipelineError, match="experiment"):
        run_arguments("p.yaml", {}, experiment=" ", run_name=None, service_account="sa")
    with pytest.raises(PipelineError, match="6 fields"):
        recurring_run_arguments(experiment_id="e", pipeline_id="p", version_id="v", job_name="n", cron="0 2 * * *",
                                arguments={}, service_account="sa")  # fmt: skip
    when = dt.datetime(2025, 1, 2, 3, 4, 5, tzinfo=dt.timezone.utc)
    assert default_version_name("skinattn-training", when) == "skinattn-training-20250102-030405"


def test_cli_compile_writes_every_pipeline(tmp_path):
    result = skinattn("pipeline", "compile", "--out", str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ablation.yaml", "batch_scoring.yaml", "training.yaml"]


def test_cli_errors_are_one_line(tmp_path):
    result = skinattn("pipeline", "schedule", "--host", "http://127.0.0.1:9", "--cron", "0 2 * * *")
    assert result.returncode == 2 and "6 fields, seconds first" in result.stderr and "Traceback" not in result.stderr
    result = skinattn("pipeline", "run", "--local", "--param", "epochs=x")
    assert result.returncode == 2 and "expected number_integer" in result.stderr
    # Port 9 (discard) on loopback: nothing listens, so the connection is refused at once.
    result = skinattn("pipeline", "submit", "--host", "http://127.0.0.1:9", "--experiment", "e")
    assert result.returncode == 2 and "cannot reach the KFP API at http://127.0.0.1:9" in result.stderr
    assert "Traceback" not in result.stderr


def test_runs_use_the_infra_service_account_by_default(clean_env):
    assert pipeline_service_account() == "skinattn-pipeline-runner"
