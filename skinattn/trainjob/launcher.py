"""Create a TrainJob, follow it to the end, and say why it failed.

The launcher polls (every ``poll_s`` seconds) instead of watching: a watch connection through the API server
drops every few minutes and needs resume logic, while one GET of the TrainJob, one list of its pods (by the
``app.kubernetes.io/instance`` label that :mod:`.spec` puts on them) and one list of warning events per poll
cost nothing at this rate, and a training run lasts hours. What changes is printed to the task log:

- each TrainJob condition (``Created``, ``Suspended``, ``Complete``, ``Failed``...) with its reason and message;
- each trainer pod's phase, with the waiting/terminated reason (``ContainerCreating``, ``ImagePullBackOff``,
  ``OOMKilled``...) and the node it runs on;
- each new Warning event about the TrainJob, its JobSet, Jobs or pods (``FailedScheduling: 0/3 nodes are
  available: 3 Insufficient nvidia.com/gpu``).

It ends when the ``Complete`` condition is True, raises :class:`TrainJobFailed` with the ``Failed``
condition's reason and message, raises :class:`TrainJobFailed` as well when a pod cannot start (an image
that cannot be pulled, a broken container config) for longer than ``stuck_s``, and :class:`TrainJobTimeout`
after ``timeout_s``.

What happens to the TrainJob (:func:`launch`):

- Complete: deleted once the launcher has what it needs (the model is in S3): nothing is left behind;
- Failed (the controller's verdict): kept, so that ``kubectl logs -l app.kubernetes.io/instance=<name>``
  shows the trainers' tracebacks; its pods have ended and hold no GPU. It is garbage-collected with the
  launcher pod (ownerReferences), i.e. when KFP's pods of the run are cleaned up;
- timeout, stuck pods, cancellation (SIGTERM to the launcher) or any launcher error: deleted at once,
  because its pods may still hold GPUs.
"""

from __future__ import annotations

import dataclasses
import signal
import threading
import time
from collections.abc import Callable
from typing import Any

from skinattn.errors import SkinattnError
from skinattn.trainjob.spec import GROUP, INSTANCE_LABEL, PLURAL, VERSION

# Container states that never resolve by waiting; after STUCK_S the run is failed instead of idling until
# the time limit with GPUs reserved.
FATAL_WAITING = frozenset(
    {"ErrImagePull", "ImagePullBackOff", "InvalidImageName", "CreateContainerConfigError", "CreateContainerError"}
)
STUCK_S = 600.0
POLL_S = 10.0
MESSAGE_MAX = 500


class TrainJobFailed(SkinattnError):
    """The TrainJob failed; the message carries its reason and message (or why its pods cannot start)."""

    def __init__(self, name: str, reason: str, message: str) -> None:
        self.name, self.reason, self.message = name, reason, message
        super().__init__(f"TrainJob {name} failed: {reason}: {message}" if message else f"TrainJob {name} failed: {reason}")


class TrainJobTimeout(SkinattnError):
    """The TrainJob did not finish in time (it is deleted)."""


class Cancelled(SkinattnError):
    """The launcher was told to stop (SIGTERM: the run was terminated, or the pod is being deleted)."""


@dataclasses.dataclass
class TrainJobApi:
    """The few API calls the launcher makes, on a ``kubernetes.client.ApiClient`` (in-cluster config in a pod;
    tests point one at an HTTP stand-in)."""

    api_client: Any
    namespace: str

    def __post_init__(self) -> None:
        from kubernetes import client

        self._custom = client.CustomObjectsApi(self.api_client)
        self._core = client.CoreV1Api(self.api_client)

    def create(self, body: dict[str, Any]) -> dict[str, Any]:
        return self._custom.create_namespaced_custom_object(GROUP, VERSION, self.namespace, PLURAL, body)

    def get(self, name: str) -> dict[str, Any] | None:
        from kubernetes.client.exceptions import ApiException

        try:
            return self._custom.get_namespaced_custom_object(GROUP, VERSION, self.namespace, PLURAL, name)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise

    def delete(self, name: str) -> bool:
        """Delete with its JobSet, Jobs and pods (background propagation); False when it was already gone."""
        from kubernetes import client
        from kubernetes.client.exceptions import ApiException

        try:
            self._custom.delete_namespaced_custom_object(
                GROUP, VERSION, self.namespace, PLURAL, name,
                body=client.V1DeleteOptions(propagation_policy="Background"),
            )  # fmt: skip
        except ApiException as exc:
            if exc.status == 404:
                return False
            raise
        return True

    def pods(self, name: str) -> list[Any]:
        return list(self._core.list_namespaced_pod(self.namespace, label_selector=f"{INSTANCE_LABEL}={name}").items)

    def warnings(self) -> list[Any]:
        return list(self._core.list_namespaced_event(self.namespace, field_selector="type=Warning").items)


def _short(text: str | None) -> str:
    text = " ".join((text or "").split())
    return text if len(text) <= MESSAGE_MAX else text[: MESSAGE_MAX - 3] + "..."


def conditions(obj: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The TrainJob's status conditions by type."""
    return {c.get("type", ""): c for c in ((obj.get("status") or {}).get("conditions") or [])}


def _is_true(condition: dict[str, Any] | None) -> bool:
    return bool(condition) and str(condition.get("status")) == "True"


def pod_state(pod: Any) -> tuple[str, str | None]:
    """A one-line state of a pod (phase, container reasons, node), and the fatal waiting reason if any."""
    status = pod.status
    phase = (status.phase if status else None) or "Unknown"
    details, fatal = [], None
    for container in (status.container_statuses or []) if status else []:
        state = container.state
        if state and state.waiting and state.waiting.reason:
            details.append(f"{state.waiting.reason}: {_short(state.waiting.message)}".rstrip(": "))
            if state.waiting.reason in FATAL_WAITING:
                fatal = details[-1]
        elif state and state.terminated:
            term = state.terminated
            details.append(f"{term.reason or 'Terminated'} (exit {term.exit_code})")
    if not details and status:
        for condition in status.conditions or []:
            if condition.type == "PodScheduled" and condition.status == "False" and condition.reason:
                details.append(f"{condition.reason}: {_short(condition.message)}".rstrip(": "))
    node = pod.spec.node_name if pod.spec else None
    text = phase + (f" ({'; '.join(details)})" if details else "") + (f" on {node}" if node else "")
    return text, fatal


@dataclasses.dataclass
class Follower:
    """Follows one TrainJob: prints what changed, decides when it is over."""

    api: TrainJobApi
    name: str
    log: Callable[[str], None] = print
    stuck_s: float = STUCK_S
    clock: Callable[[], float] = time.monotonic
    _conditions: dict[str, tuple[Any, ...]] = dataclasses.field(default_factory=dict)
    _pods: dict[str, str] = dataclasses.field(default_factory=dict)
    _events: set[str] = dataclasses.field(default_factory=set)
    _stuck_since: dict[str, float] = dataclasses.field(default_factory=dict)

    def poll(self) -> dict[str, Any] | None:
        """Look once; print what changed. The TrainJob when it completed, None while it runs; raises
        TrainJobFailed when it failed, was deleted, or a pod cannot start."""
        obj = self.api.get(self.name)
        if obj is None:
            raise TrainJobFailed(self.name, "Deleted", "the TrainJob disappeared before it finished (deleted by someone?)")
        found = conditions(obj)
        for kind, condition in found.items():
            key = tuple(condition.get(k) for k in ("status", "reason", "message"))
            if self._conditions.get(kind) != key:
                self._conditions[kind] = key
                self.log(f"TrainJob {self.name}: {kind}={condition.get('status')} "
                         f"{condition.get('reason') or ''} {_short(condition.get('message'))}".rstrip())  # fmt: skip
        self._follow_pods()
        self._follow_events()
        if _is_true(found.get("Failed")):
            failed = found["Failed"]
            raise TrainJobFailed(self.name, failed.get("reason") or "Failed", _short(failed.get("message")))
        if _is_true(found.get("Complete")):
            return obj
        return None

    def _follow_pods(self) -> None:
        now = self.clock()
        for pod in sorted(self.api.pods(self.name), key=lambda p: p.metadata.name):
            pod_name = pod.metadata.name
            text, fatal = pod_state(pod)
            if self._pods.get(pod_name) != text:
                self._pods[pod_name] = text
                self.log(f"pod {pod_name}: {text}")
            if fatal is None:
                self._stuck_since.pop(pod_name, None)
                continue
            since = self._stuck_since.setdefault(pod_name, now)
            if now - since >= self.stuck_s:
                raise TrainJobFailed(self.name, "PodCannotStart", f"pod {pod_name} stuck for {now - since:.0f} s: {fatal}")

    def _follow_events(self) -> None:
        prefix = f"{self.name}-"
        for event in self.api.warnings():
            involved = event.involved_object
            if involved is None or not (involved.name == self.name or (involved.name or "").startswith(prefix)):
                continue
            key = f"{event.metadata.uid or event.metadata.name}/{event.count or 1}"
            if key in self._events:
                continue
            self._events.add(key)
            repeat = f" (x{event.count})" if (event.count or 1) > 1 else ""
            self.log(f"warning {involved.kind}/{involved.name}: {event.reason}: {_short(event.message)}{repeat}")


@dataclasses.dataclass
class _Stop:
    """Turns SIGTERM into Cancelled in the launcher's main thread, for the duration of a launch."""

    previous: Any = None
    installed: bool = False

    def __enter__(self) -> _Stop:
        if threading.current_thread() is threading.main_thread():
            self.previous = signal.signal(signal.SIGTERM, self._handle)
            self.installed = True
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self.installed:
            signal.signal(signal.SIGTERM, self.previous)

    @staticmethod
    def _handle(signum: int, frame: object) -> None:
        raise Cancelled("the launcher received SIGTERM (run terminated or pod deleted)")


# What a refused create usually means on a cluster, for the message.
_CREATE_HINTS = {
    403: "the pipeline runner's service account may not create TrainJobs: apply the RBAC of infra/k8s and run "
    "as skinattn-pipeline-runner",
    404: "the TrainJob API (trainer.kubeflow.org/v1alpha1) is not installed: install Kubeflow Trainer (infra/README.md)",
    409: "a TrainJob of this name exists already",
}


def _create(api: TrainJobApi, body: dict[str, Any]) -> None:
    from kubernetes.client.exceptions import ApiException

    try:
        api.create(body)
    except ApiException as exc:
        detail = _api_message(exc)
        hint = _CREATE_HINTS.get(exc.status, "the API server refused it (a webhook of Kubeflow Trainer, or the CRD schema)")
        raise SkinattnError(f"cannot create TrainJob {body['metadata']['name']}: {hint} ({exc.status}: {detail})") from None


def _api_message(exc: Any) -> str:
    """The ``message`` of a Kubernetes Status body, else the reason."""
    import json

    try:
        return _short(json.loads(exc.body or "{}").get("message")) or str(exc.reason)
    except (ValueError, AttributeError):
        return str(exc.reason)


def launch(
    api: TrainJobApi,
    body: dict[str, Any],
    *,
    timeout_s: float | None,
    poll_s: float = POLL_S,
    stuck_s: float = STUCK_S,
    log: Callable[[str], None] = print,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> dict[str, Any]:
    """Create the TrainJob ``body``, follow it until it completes (returned), fails or times out (raised).

    Clean-up follows the module docstring: deleted on success and whenever its pods may still hold GPUs,
    kept (for its logs) when the controller failed it.
    """
    name = body["metadata"]["name"]
    follower = Follower(api, name, log=log, stuck_s=stuck_s, clock=clock)
    with _Stop():
        _create(api, body)
        log(f"created TrainJob {api.namespace}/{name}: {body['spec']['trainer']['numNodes']} node(s) x "
            f"{body['spec']['trainer']['numProcPerNode']} process(es), runtime {body['spec']['runtimeRef']['name']}")  # fmt: skip
        keep = False
        try:
            deadline = None if not timeout_s else clock() + float(timeout_s)
            while True:
                done = follower.poll()
                if done is not None:
                    return done
                if deadline is not None and clock() >= deadline:
                    raise TrainJobTimeout(
                        f"TrainJob {name} did not finish within {float(timeout_s) / 3600:.4g} h; deleted "
                        "(raise train_timeout_hours if the run needs longer)"
                    )
                sleep(poll_s)
        except TrainJobFailed as exc:
            keep = exc.reason not in ("PodCannotStart", "Deleted")
            raise
        finally:
            if keep:
                log(f"TrainJob {name} kept for its logs: kubectl -n {api.namespace} logs -l {INSTANCE_LABEL}={name} "
                    "(deleted with the launcher pod)")  # fmt: skip
            else:
                try:
                    if api.delete(name):
                        log(f"deleted TrainJob {name}")
                except Exception as exc:  # noqa: BLE001 - a clean-up failure must not hide the outcome
                    log(f"could not delete TrainJob {name} ({exc}); it is garbage-collected with the launcher pod")
