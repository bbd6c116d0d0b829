"""The launcher against a Kubernetes API stand-in over HTTP, with the real ``kubernetes`` client: create,
follow until Complete or Failed, the failure's reason, stuck pods, the time limit, cancellation, clean-up,
and the whole train-trainjob step with S3 (moto) in both directions."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest
from _k8s_stand_in import KubernetesStandIn, condition, event, pod

from skinattn.errors import SkinattnError
from skinattn.storage import publish_folder
from skinattn.trainjob import launcher
from skinattn.trainjob.launcher import Cancelled, TrainJobApi, TrainJobFailed, TrainJobTimeout, launch
from skinattn.trainjob.spec import Placement, render_trainjob

NS = "kubeflow"
NAME = "skinattn-train-0123456789"
CREATED = condition("Created", "True", "JobsCreationSucceeded", "Succeeded to create Jobs")


def _body(name: str = NAME) -> dict:
    return render_trainjob(name=name, namespace=NS, placement=Placement(image="ghcr.io/skinattn/skinattn:0.1.0-cuda"),
                           nodes=2, gpus=1, command=["python", "-m", "skinattn.trainjob.node"], args=["--prepared", "s3://b/p"])  # fmt: skip


class FakeClock:
    """Time that passes only when the launcher sleeps."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def _launch(stand_in: KubernetesStandIn, body: dict | None = None, **kwargs) -> tuple[dict, list[str]]:
    clock, lines = FakeClock(), []
    kwargs = {"timeout_s": 3600.0, "poll_s": 10.0, "stuck_s": 60.0, **kwargs}
    result = launch(TrainJobApi(stand_in.api_client(), NS), body or _body(), log=lines.append, clock=clock,
                    sleep=clock.sleep, **kwargs)  # fmt: skip
    return result, lines


def _script(steps):
    """A script that applies ``steps[poll]`` (the last one again for later polls)."""
    def script(stand_in: KubernetesStandIn, name: str, poll: int) -> None:
        steps[min(poll, len(steps) - 1)](stand_in, name)
    return script


def _pods(stand_in: KubernetesStandIn, name: str, phase: str, **state) -> None:
    for i in range(2):
        stand_in.put_pod(pod(f"{name}-node-0-{i}-x", name, phase, node=f"gpu-{i}", **state))


def test_completes_streams_status_and_deletes_the_trainjob():
    steps = [
        lambda s, n: (s.set_conditions(n, CREATED),
                      s.put_pod(pod(f"{n}-node-0-0-x", n, "Pending", unschedulable="0/3 nodes are available: 3 Insufficient nvidia.com/gpu.")),
                      s.add_event(event("e1", "Pod", f"{n}-node-0-0-x", "FailedScheduling", "0/3 nodes are available: 3 Insufficient nvidia.com/gpu."))),
        lambda s, n: (_pods(s, n, "Pending", waiting=("ContainerCreating", "")),
                      s.add_event(event("e2", "Pod", "someone-else", "BackOff", "not ours"))),
        lambda s, n: _pods(s, n, "Running"),
        lambda s, n: _pods(s, n, "Running"),
        lambda s, n: (s.set_conditions(n, CREATED, condition("Complete", "True", "JobsCompleted", "jobs completed")),
                      _pods(s, n, "Succeeded", terminated=("Completed", 0))),
    ]  # fmt: skip
    with KubernetesStandIn(script=_script(steps)) as stand_in:
        result, lines = _launch(stand_in)
        assert stand_in.unknown_calls() == []
        assert stand_in.created == [_body()]  # exactly the rendered object reached the API
        assert stand_in.deleted == [NAME]  # nothing left behind once the model is in S3
        assert stand_in.polls[NAME] == 5
    assert result["metadata"]["name"] == NAME
    log = "\n".join(lines)
    assert f"created TrainJob {NS}/{NAME}: 2 node(s) x 1 process(es), runtime torch-distributed" in log
    assert f"TrainJob {NAME}: Created=True JobsCreationSucceeded" in log
    assert "Pending (Unschedulable: 0/3 nodes are available" in log
    assert f"warning Pod/{NAME}-node-0-0-x: FailedScheduling" in log and "not ours" not in log
    assert f"pod {NAME}-node-0-1-x: Pending (ContainerCreating) on gpu-1" in log
    assert f"pod {NAME}-node-0-0-x: Running on gpu-0" in log
    assert "Succeeded (Completed (exit 0))" in log
    assert f"TrainJob {NAME}: Complete=True JobsCompleted" in log
    assert log.count(f"pod {NAME}-node-0-0-x: Running") == 1  # changes only, not every poll


def test_failed_condition_fails_with_its_reason_and_keeps_the_trainjob():
    message = "jobset failed due to: FailedJobs; job node-0 failed: BackoffLimitExceeded"
    steps = [
        lambda s, n: (s.set_conditions(n, CREATED), _pods(s, n, "Running")),
        lambda s, n: (s.set_conditions(n, CREATED, condition("Failed", "True", "FailedJobs", message)),
                      _pods(s, n, "Failed", terminated=("Error", 1))),
    ]  # fmt: skip
    lines: list[str] = []
    with KubernetesStandIn(script=_script(steps)) as stand_in:
        with pytest.raises(TrainJobFailed) as failure:
            launch(TrainJobApi(stand_in.api_client(), NS), _body(), timeout_s=None, poll_s=0, log=lines.append)
        assert stand_in.deleted == []  # kept for `kubectl logs`; the owner reference cleans it up later
    assert (failure.value.reason, failure.value.message) == ("FailedJobs", message)
    assert str(failure.value) == f"TrainJob {NAME} failed: FailedJobs: {message}"
    assert any("Failed (Error (exit 1))" in line for line in lines)
    assert any("kept for its logs" in line and "app.kubernetes.io/instance=" in line for line in lines)


def test_a_pod_that_cannot_pull_its_image_fails_the_run_and_frees_the_gpus():
    steps = [lambda s, n: _pods(s, n, "Pending", waiting=("ImagePullBackOff", 'Back-off pulling image "x"'))]
    with KubernetesStandIn(script=_script(steps)) as stand_in:
        with pytest.raises(TrainJobFailed, match=r"PodCannotStart: pod .* stuck for 60 s: ImagePullBackOff"):
            _launch(stand_in, stuck_s=60.0)
        assert stand_in.deleted == [NAME]  # scheduled pods hold their GPUs: deleted


def test_time_limit_deletes_the_trainjob():
    steps = [lambda s, n: (s.set_conditions(n, CREATED), _pods(s, n, "Running"))]
    with KubernetesStandIn(script=_script(steps)) as stand_in:
        with pytest.raises(TrainJobTimeout, match=r"did not finish within 0\.01 h; deleted"):
            _launch(stand_in, timeout_s=36.0, poll_s=10.0)
        assert stand_in.polls[NAME] == 5  # t = 0, 10, 20, 30, 40 s
        assert stand_in.deleted == [NAME]


def test_a_trainjob_deleted_by_someone_else_fails_the_step():
    def script(stand_in, name, poll):
        if poll == 1:
            stand_in.trainjobs.pop((NS, name))

    with KubernetesStandIn(script=script) as stand_in:
        with pytest.raises(TrainJobFailed, match="disappeared before it finished"):
            _launch(stand_in)


def test_sigterm_cancels_and_deletes(monkeypatch):
    """KFP terminating the run sends SIGTERM to the launcher: the TrainJob must not outlive it."""
    steps = [lambda s, n: _pods(s, n, "Running")]
    with KubernetesStandIn(script=_script(steps)) as stand_in:
        sleeps = []

        def sleep(seconds):
            sleeps.append(seconds)
            if len(sleeps) == 2:
                os.kill(os.getpid(), signal.SIGTERM)

        previous = signal.getsignal(signal.SIGTERM)
        with pytest.raises(Cancelled, match="SIGTERM"):
            launch(TrainJobApi(stand_in.api_client(), NS), _body(), timeout_s=None, poll_s=0, log=lambda _: None, sleep=sleep)
        assert signal.getsignal(signal.SIGTERM) is previous  # the handler is restored
        assert stand_in.deleted == [NAME]


@pytest.mark.parametrize(
    ("refusal", "hint"),
    [
        ((403, "Forbidden", 'trainjobs.trainer.kubeflow.org is forbidden: User "system:serviceaccount:kubeflow:x" cannot create'),
         "may not create TrainJobs: apply the RBAC of infra/k8s"),
        ((404, "NotFound", "the server could not find the requested resource"), "is not installed: install Kubeflow Trainer"),
        ((422, "Invalid", 'admission webhook "validate.trainjob.trainer.kubeflow.org" denied the request: ClusterTrainingRuntime "torch-distributed" not found'),
         "ClusterTrainingRuntime \"torch-distributed\" not found"),
    ],
)  # fmt: skip
def test_a_refused_create_says_why(refusal, hint):
    with KubernetesStandIn() as stand_in:
        stand_in.refuse_create = refusal
        with pytest.raises(SkinattnError, match=f"cannot create TrainJob {NAME}: .*{hint}".replace("(", r"\(").replace(")", r"\)")):
            _launch(stand_in)
        assert stand_in.deleted == [] and not stand_in.calls("DELETE", ".*")


def test_the_stand_in_validates_like_the_api_server():
    body = _body()
    body["spec"]["trainer"]["numNode"] = 2  # the API server would drop it silently; the stand-in refuses it
    with KubernetesStandIn() as stand_in:
        with pytest.raises(SkinattnError, match=r"422: .*numNode: not a field of the v2.2 API"):
            _launch(stand_in, body)


# ---- the whole step: prepared set and model through S3 ------------------------------------------------


def _model_folder(folder: Path) -> Path:
    """What node 0 publishes: the pod path's model folder layout (collect_model_folder)."""
    folder.mkdir(parents=True)
    (folder / "model.safetensors").write_bytes(b"\0" * 64)
    (folder / "model.json").write_text("{}")
    (folder / "config.yaml").write_text("model: {arch: resnet10t}\n")
    (folder / "history.jsonl").write_text('{"epoch": 1}\n')
    (folder / "summary.json").write_text(json.dumps({"best_epoch": 1, "runtime": {"world_size": 4}}))
    return folder


def test_trainjob_step_end_to_end_with_s3(s3_env, tmp_path, clean_env):
    """The launcher step reads nothing but URIs: the nodes get the prepared prefix, node 0 publishes to the
    model output's URI, and the step copies that into its output path and returns the summary."""
    import boto3

    from skinattn.steps.trainjob import trainjob_step
    from skinattn_components.trainjob import trainjob_placement

    boto3.client("s3").create_bucket(Bucket="pipeline-root")
    prepared_uri = "s3://pipeline-root/run-1/prepare/prepared"
    model_uri = "s3://pipeline-root/run-1/train-trainjob/model"
    published = _model_folder(tmp_path / "published")

    def on_create(stand_in, obj):
        args = obj["spec"]["trainer"]["args"]
        assert args[args.index("--prepared") + 1] == prepared_uri
        publish_folder(published, args[args.index("--publish") + 1])  # as node 0 does when torchrun succeeded

    steps = [lambda s, n: s.set_conditions(n, CREATED),
             lambda s, n: s.set_conditions(n, CREATED, condition("Complete", "True", "JobsCompleted", ""))]  # fmt: skip
    placement = trainjob_placement(cpu_request="4", cpu_limit="8", memory_request="16G", memory_limit="32G", shm_size="8Gi")
    environ = {"SKINATTN_POD_NAME": "train-trainjob-pod", "SKINATTN_POD_UID": "uid-1", "SKINATTN_POD_NAMESPACE": NS}
    with KubernetesStandIn(script=_script(steps), on_create=on_create) as stand_in:
        summary = trainjob_step(
            prepared_uri, model_uri, tmp_path / "out" / "model", nodes=2, gpus=2, placement_json=placement,
            api_client=stand_in.api_client(), environ=environ, poll_s=0, arch="resnet10t", soft_attention=True,
            image_size=32, epochs=2, batch_size=4, lr=0.01, seed=0,
        )  # fmt: skip
        (created,) = stand_in.created
        assert stand_in.deleted == [created["metadata"]["name"]]
    assert summary["best_epoch"] == 1
    copied = sorted(p.name for p in (tmp_path / "out" / "model").iterdir())
    assert copied == ["config.yaml", "history.jsonl", "model.json", "model.safetensors", "summary.json"]
    assert created["metadata"]["ownerReferences"][0]["uid"] == "uid-1"
    # 2 epochs -> the pod path's automatic limit (1 h + 15 min per epoch) + 10 min for the launcher to act first
    assert created["spec"]["activeDeadlineSeconds"] == int(1.5 * 3600) + 600


def test_trainjob_step_needs_a_cluster(tmp_path, clean_env):
    from skinattn.steps.trainjob import trainjob_step

    with pytest.raises(SkinattnError, match="kfp.local cannot run it; use trainer=pod"):
        trainjob_step("s3://b/p", "s3://b/m", tmp_path, nodes=1, gpus=1, placement_json="{}", environ={},
                      arch="resnet10t", soft_attention=True, image_size=32, epochs=1, batch_size=4, lr=0.01, seed=0)  # fmt: skip


def test_launcher_constants_are_sane():
    assert launcher.POLL_S >= 5 and launcher.STUCK_S >= 300  # a cluster is polled gently, image pulls get time
