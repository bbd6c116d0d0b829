"""Checks that rendered Kubernetes manifests follow ``infra/image.env`` and ``infra/cluster.env``.

``python infra/conformance.py NAME=RENDERED.yaml ...`` (run by ``infra/check.sh`` on the output of
``kubectl kustomize`` for each overlay) prints every disagreement and exits 1 if there is any. The checks
are plain functions over lists of objects so that ``tests/infra`` can exercise them without the tool venv.

What "agree" means:
- images: the named workloads run exactly the image that ``infra/image.env`` defines for their role, and no
  container runs an unresolved placeholder or another tag of a project repository;
- GPU: every pod that asks for a GPU, tolerates the GPU taint or selects GPU nodes does all three the way
  ``infra/cluster.env`` says (the pipelines' train step uses the same values through components/cluster.py);
- S3: the settings ConfigMap holds exactly the agreed keys in every namespace that has it (always including
  the KFP namespace), credentials come only from the agreed Secret and keys, and no Secret is committed;
- RBAC: the pipeline runner's account exists in the KFP namespace, is bound, and its Role has no wildcard
  and reads Secrets only by name;
- pipeline root: KFP's launcher ConfigMap (``kfp-launcher``) in the KFP namespace has ``SKINATTN_PIPELINE_ROOT``
  as its default, in the S3 ConfigMap's bucket, reached with that ConfigMap's endpoint and region and the S3
  Secret, which the runner's Role may read.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def _wrappers_from_the_checkout() -> None:
    """Make ``skinattn_components`` importable from ``components/`` when run from the tool venv, where the
    project is not installed (the folder's name is not the package's: see pyproject.toml)."""
    if importlib.util.find_spec("skinattn_components") is not None:
        return
    folder = REPO_ROOT / "components"
    spec = importlib.util.spec_from_file_location(
        "skinattn_components", folder / "__init__.py", submodule_search_locations=[str(folder)]
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules["skinattn_components"] = module
    spec.loader.exec_module(module)


_wrappers_from_the_checkout()
from skinattn_components import cluster, image  # noqa: E402  (needs the loader above)

POD_TEMPLATE_KINDS = ("Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job")

# (kind, workload name, container name) -> the image.env role its image must have, when it is rendered.
EXPECTED_IMAGES = {
    ("Deployment", "skinattn-serving", "serving"): "serving",
    ("DaemonSet", "skinattn-gpu-image-prepuller", "pull-gpu-image"): "gpu",
    ("Job", "minio-create-bucket", "create-bucket"): "component",
}


@dataclass(frozen=True)
class Conventions:
    """The agreed values, read once from the env files (or built by a test)."""

    images: dict[str, str]
    gpu: cluster.GpuNodePool
    s3: cluster.S3Settings
    namespace: str
    kfp_namespace: str
    pipeline_service_account: str
    pipeline_root: str

    @classmethod
    def load(cls) -> Conventions:
        return cls(
            images={"component": image.component_image(), "gpu": image.gpu_image(), "serving": image.serving_image()},
            gpu=cluster.gpu_node_pool(),
            s3=cluster.s3_settings(),
            namespace=cluster.namespace(),
            kfp_namespace=cluster.kfp_namespace(),
            pipeline_service_account=cluster.pipeline_service_account(),
            pipeline_root=cluster.pipeline_root(),
        )


def _name(obj: dict) -> str:
    meta = obj.get("metadata") or {}
    return f"{obj.get('kind')}/{meta.get('namespace', '-')}/{meta.get('name')}"


def _pod_spec(obj: dict) -> dict | None:
    if obj.get("kind") not in POD_TEMPLATE_KINDS:
        return None
    return ((obj.get("spec") or {}).get("template") or {}).get("spec") or {}


def _containers(spec: dict) -> Iterator[dict]:
    yield from spec.get("initContainers") or []
    yield from spec.get("containers") or []


def _repository(ref: str) -> str:
    """``registry/name:tag`` or ``name@sha256:..`` -> ``registry/name`` (a port colon is not a tag)."""
    ref = ref.split("@", 1)[0]
    head, _, tail = ref.rpartition(":")
    return head if head and "/" not in tail else ref


def check_images(objects: list[dict], conv: Conventions) -> list[str]:
    problems = []
    project_images = set(conv.images.values())
    project_repos = {_repository(ref) for ref in project_images}
    placeholders = {"skinattn", "skinattn-gpu", "skinattn-serving"}
    for obj in objects:
        spec = _pod_spec(obj)
        if spec is None:
            continue
        for container in _containers(spec):
            ref = container.get("image", "")
            where = f"{_name(obj)} container {container.get('name')}"
            if ref in placeholders or (":" not in ref.rsplit("/", 1)[-1] and "@" not in ref):
                problems.append(f"{where}: image {ref!r} has no tag (placeholder not replaced?)")
            elif _repository(ref) in project_repos and ref not in project_images:
                problems.append(f"{where}: image {ref!r} is not one of infra/image.env's {sorted(project_images)}")
            role = EXPECTED_IMAGES.get((obj.get("kind"), obj["metadata"].get("name"), container.get("name")))
            if role and ref != conv.images[role]:
                problems.append(f"{where}: image {ref!r} must be the {role} image {conv.images[role]!r}")
    if not any(key[:2] == (o.get("kind"), o["metadata"].get("name")) for o in objects for key in EXPECTED_IMAGES):
        problems.append("no project workload rendered (expected at least the skinattn-serving Deployment)")
    return problems


def _requests_gpu(spec: dict, resource: str) -> bool:
    return any(
        resource in ((c.get("resources") or {}).get(section) or {})
        for c in _containers(spec)
        for section in ("limits", "requests")
    )


def check_gpu(objects: list[dict], conv: Conventions) -> list[str]:
    problems = []
    pool = conv.gpu
    for obj in objects:
        spec = _pod_spec(obj)
        if spec is None:
            continue
        tolerations = spec.get("tolerations") or []
        selector = spec.get("nodeSelector") or {}
        gpu_related = (
            _requests_gpu(spec, pool.resource)
            or any(t.get("key") == pool.taint_key for t in tolerations)
            or pool.node_label_key in selector
        )
        if not gpu_related:
            continue
        if selector.get(pool.node_label_key) != pool.node_label_value:
            problems.append(f"{_name(obj)}: nodeSelector {selector} lacks {pool.node_selector()}")
        if pool.toleration() not in tolerations:
            problems.append(f"{_name(obj)}: tolerations {tolerations} lack {pool.toleration()}")
    return problems


def _env_sources(spec: dict) -> Iterator[tuple[str, str, str | None]]:
    """(``configMap``/``secret``, name, key or None for a whole envFrom) for every container."""
    for container in _containers(spec):
        for source in container.get("envFrom") or []:
            for kind in ("configMap", "secret"):
                if f"{kind}Ref" in source:
                    yield kind, source[f"{kind}Ref"]["name"], None
        for var in container.get("env") or []:
            ref = var.get("valueFrom") or {}
            for kind in ("configMap", "secret"):
                if f"{kind}KeyRef" in ref:
                    yield kind, ref[f"{kind}KeyRef"]["name"], ref[f"{kind}KeyRef"]["key"]


# (Deployment, Secret, key): the serving Deployment's optional bearer token (docs/serving.md), the one Secret
# key besides the S3 credentials that a workload may read, and only there.
SERVING_TOKEN_SECRET = ("skinattn-serving", "skinattn-serving-auth", "token")


def check_s3(objects: list[dict], conv: Conventions) -> list[str]:
    problems = []
    s3 = conv.s3
    config_maps = [o for o in objects if o.get("kind") == "ConfigMap" and o["metadata"].get("name") == s3.config_map]
    for cm in config_maps:
        keys = set((cm.get("data") or {}).keys())
        if keys != set(s3.config_map_keys):
            problems.append(f"{_name(cm)}: keys {sorted(keys)} != agreed {sorted(s3.config_map_keys)}")
    if conv.kfp_namespace not in {cm["metadata"].get("namespace") for cm in config_maps}:
        problems.append(f"ConfigMap {s3.config_map} missing in the KFP namespace {conv.kfp_namespace}")
    for obj in objects:
        if obj.get("kind") == "Secret":
            problems.append(f"{_name(obj)}: Secrets must not be committed; create them with kubectl")
        spec = _pod_spec(obj)
        for kind, name, key in _env_sources(spec) if spec is not None else ():
            if kind == "secret" and (obj["metadata"].get("name"), name, key) == SERVING_TOKEN_SECRET:
                continue  # the model server's optional bearer token, not S3 credentials
            agreed_name, agreed_keys = (
                (s3.config_map, s3.config_map_keys) if kind == "configMap" else (s3.secret, s3.secret_keys)
            )
            if name != agreed_name:
                problems.append(f"{_name(obj)}: {kind} {name!r} is not the agreed {agreed_name!r}")
            elif key is not None and key not in agreed_keys:
                problems.append(f"{_name(obj)}: {kind} key {key!r} is not one of {list(agreed_keys)}")
    return problems


def check_rbac(objects: list[dict], conv: Conventions) -> list[str]:
    problems = []
    account, ns = conv.pipeline_service_account, conv.kfp_namespace

    def find(kind: str) -> list[dict]:
        return [o for o in objects if o.get("kind") == kind and o["metadata"].get("namespace") == ns]

    if not any(sa["metadata"]["name"] == account for sa in find("ServiceAccount")):
        problems.append(f"ServiceAccount {account} missing in namespace {ns}")
    bound_roles = {
        rb["roleRef"]["name"]
        for rb in find("RoleBinding")
        if any(s.get("kind") == "ServiceAccount" and s.get("name") == account for s in rb.get("subjects") or [])
    }
    if not bound_roles:
        problems.append(f"no RoleBinding in {ns} binds ServiceAccount {account}")
    for role in find("Role"):
        if role["metadata"]["name"] not in bound_roles:
            continue
        for rule in role.get("rules") or []:
            fields = [*rule.get("apiGroups", []), *rule.get("resources", []), *rule.get("verbs", [])]
            if "*" in fields:
                problems.append(f"{_name(role)}: wildcard in rule {rule}")
            if "secrets" in rule.get("resources", []) and not rule.get("resourceNames"):
                problems.append(f"{_name(role)}: secrets readable without resourceNames: {rule}")
    return problems


# KFP's launcher reads its settings from the ConfigMap of this fixed name in the namespace where a run executes.
LAUNCHER_CONFIGMAP = "kfp-launcher"


def _config_map_data(objects: list[dict], name: str, namespace: str) -> dict | None:
    for obj in objects:
        meta = obj.get("metadata") or {}
        if obj.get("kind") == "ConfigMap" and meta.get("name") == name and meta.get("namespace") == namespace:
            return obj.get("data") or {}
    return None


def _role_reads_secret(objects: list[dict], conv: Conventions, secret: str) -> bool:
    """Whether a Role bound to the pipeline runner's account in the KFP namespace may get ``secret``."""
    ns, account = conv.kfp_namespace, conv.pipeline_service_account
    bound = {
        rb["roleRef"]["name"]
        for rb in objects
        if rb.get("kind") == "RoleBinding" and rb["metadata"].get("namespace") == ns
        and any(s.get("kind") == "ServiceAccount" and s.get("name") == account for s in rb.get("subjects") or [])
    }  # fmt: skip
    return any(
        "secrets" in rule.get("resources", []) and "get" in rule.get("verbs", []) and secret in rule.get("resourceNames", [])
        for role in objects
        if role.get("kind") == "Role" and role["metadata"].get("namespace") == ns and role["metadata"]["name"] in bound
        for rule in role.get("rules") or []
    )


def check_pipeline_root(objects: list[dict], conv: Conventions) -> list[str]:
    """The launcher's ConfigMap in the KFP namespace makes SKINATTN_PIPELINE_ROOT the default of every run
    (UI runs included), in the bucket of the S3 ConfigMap, reached with its endpoint and region and with the
    S3 Secret, which the pipeline runner's Role may read. Anything else fails the run at its first output."""
    import yaml  # only this check parses YAML: the launcher's `providers` value is YAML text

    ns, s3 = conv.kfp_namespace, conv.s3
    launcher = _config_map_data(objects, LAUNCHER_CONFIGMAP, ns)
    if launcher is None:
        return [f"ConfigMap {LAUNCHER_CONFIGMAP} missing in the KFP namespace {ns}: runs would use KFP's bundled store"]
    where = f"ConfigMap/{ns}/{LAUNCHER_CONFIGMAP}"
    problems = []
    if launcher.get("defaultPipelineRoot") != conv.pipeline_root:
        problems.append(f"{where}: defaultPipelineRoot {launcher.get('defaultPipelineRoot')!r} "
                        f"!= SKINATTN_PIPELINE_ROOT {conv.pipeline_root!r}")  # fmt: skip
    settings = _config_map_data(objects, s3.config_map, ns) or {}
    scheme, _, rest = conv.pipeline_root.partition("://")
    bucket = rest.split("/", 1)[0].split("?", 1)[0]
    if scheme != "s3" or bucket != settings.get("SKINATTN_S3_BUCKET"):
        problems.append(f"SKINATTN_PIPELINE_ROOT {conv.pipeline_root!r} is not in the S3 bucket "
                        f"{settings.get('SKINATTN_S3_BUCKET')!r} of ConfigMap {s3.config_map} in {ns}")  # fmt: skip
    try:
        provider = yaml.safe_load(launcher.get("providers") or "")["s3"]["default"]
        credentials = provider["credentials"]
    except (yaml.YAMLError, KeyError, TypeError) as exc:
        return [*problems, f"{where}: providers has no s3.default with credentials ({type(exc).__name__}: {exc})"]
    for key, setting in (("endpoint", "AWS_ENDPOINT_URL"), ("region", "AWS_REGION")):
        if provider.get(key) != settings.get(setting):
            problems.append(f"{where}: s3 {key} {provider.get(key)!r} != {setting} {settings.get(setting)!r} "
                            f"of ConfigMap {s3.config_map}")  # fmt: skip
    if str(provider.get("endpoint", "")).startswith("http://") and provider.get("disableSSL") is not True:
        problems.append(f"{where}: the endpoint is plain HTTP but disableSSL is not true")
    ref = credentials.get("secretRef") or {}
    if credentials.get("fromEnv") or ref.get("secretName") != s3.secret:
        problems.append(f"{where}: credentials must come from the Secret {s3.secret!r} (secretRef), got {credentials}")
    elif {ref.get("accessKeyKey"), ref.get("secretKeyKey")} != set(s3.secret_keys):
        problems.append(f"{where}: secretRef keys {ref.get('accessKeyKey')!r}, {ref.get('secretKeyKey')!r} "
                        f"are not the agreed {list(s3.secret_keys)}")  # fmt: skip
    if not _role_reads_secret(objects, conv, s3.secret):
        problems.append(f"the pipeline runner's Role in {ns} may not get Secret {s3.secret}, which the launcher reads")
    return problems


def check_namespaces(objects: list[dict], conv: Conventions) -> list[str]:
    allowed = {conv.namespace, conv.kfp_namespace}
    problems = []
    if not any(o.get("kind") == "Namespace" and o["metadata"]["name"] == conv.namespace for o in objects):
        problems.append(f"Namespace {conv.namespace} is not created")
    for obj in objects:
        ns = obj["metadata"].get("namespace")
        if obj.get("kind") != "Namespace" and ns not in allowed:
            problems.append(f"{_name(obj)}: namespace {ns!r} is not one of {sorted(allowed)}")
    return problems


CHECKS = (check_images, check_gpu, check_s3, check_rbac, check_pipeline_root, check_namespaces)


def check_objects(objects: Iterable[dict], conv: Conventions) -> list[str]:
    """All disagreements between ``objects`` (one rendered kustomization) and ``conv``."""
    objects = [o for o in objects if o]
    return [problem for check in CHECKS for problem in check(objects, conv)]


def main(argv: list[str]) -> int:
    import yaml  # imported here: the tests use the functions above with objects they build

    if not argv:
        print("usage: conformance.py NAME=RENDERED.yaml ...", file=sys.stderr)
        return 2
    conv = Conventions.load()
    failed = False
    for arg in argv:
        name, _, path = arg.rpartition("=")
        with open(path, encoding="utf-8") as stream:
            problems = check_objects(yaml.safe_load_all(stream), conv)
        for problem in problems:
            print(f"  {name or path}: {problem}")
        print(f"conformance {name or path}: {'FAILED' if problems else 'ok'} ({len(problems)} problem(s))")
        failed |= bool(problems)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
