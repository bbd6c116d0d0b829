"""The optional Ingress of infra/k8s/components/ingress, read from the source files (``make lint-infra`` renders
it on top of base and validates it against the Kubernetes schemas): TLS, the routes it exposes, the upload size
it lets through."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
K8S = REPO / "infra" / "k8s"
INGRESS = K8S / "components" / "ingress"
SERVICE_SOURCE = (REPO / "serving" / "service.py").read_text(encoding="utf-8")
# The service's routes are declared in serving/*.py (service.py and the route modules it mounts).
SERVING_SOURCES = "\n".join(p.read_text(encoding="utf-8") for p in sorted((REPO / "serving").glob("*.py")))


def yaml_docs(path: Path) -> list[dict]:
    with path.open(encoding="utf-8") as stream:
        return [doc for doc in yaml.safe_load_all(stream) if doc]


def ingress() -> dict:
    (doc,) = [d for d in yaml_docs(INGRESS / "ingress.yaml") if d.get("kind") == "Ingress"]
    return doc


def paths() -> list[dict]:
    return [p for rule in ingress()["spec"]["rules"] for p in rule["http"]["paths"]]


def test_it_is_an_optional_component_no_overlay_includes():
    (kustomization,) = yaml_docs(INGRESS / "kustomization.yaml")
    assert kustomization["kind"] == "Component" and kustomization["resources"] == ["ingress.yaml"]
    for path in [*K8S.glob("base/**/kustomization.yaml"), *K8S.glob("overlays/*/kustomization.yaml")]:
        for entry in yaml_docs(path)[0].get("components", []):
            assert not entry.rstrip("/").endswith("components/ingress"), path


def test_every_host_is_served_over_tls():
    spec = ingress()["spec"]
    hosts = {rule["host"] for rule in spec["rules"]}
    covered = {host for tls in spec["tls"] for host in tls["hosts"]}
    assert hosts <= covered and all(tls.get("secretName") for tls in spec["tls"])


def test_it_routes_the_client_api_to_the_serving_service_and_nothing_else():
    service = yaml_docs(K8S / "base" / "serving" / "service.yaml")[0]
    port_names = {p["name"] for p in service["spec"]["ports"]}
    exposed = set()
    for path in paths():
        backend = path["backend"]["service"]
        assert backend["name"] == service["metadata"]["name"] and backend["port"]["name"] in port_names
        assert path["pathType"] == "Exact", "a Prefix path would expose more routes than the ones listed"
        exposed.add(path["path"])
        # Each route exists in the service (a typo would answer 404 to every client).
        assert re.search(rf"""["']{re.escape(path["path"])}["']""", SERVING_SOURCES), path["path"]
    assert "/classify" in exposed
    assert not exposed & {"/metrics", "/readyz", "/livez", "/healthz", "/docs", "/schema.json"}
    assert ingress()["metadata"]["namespace"] == service["metadata"].get("namespace", "skinattn")


def test_the_body_limit_lets_the_largest_accepted_upload_through():
    size = ingress()["metadata"]["annotations"]["nginx.ingress.kubernetes.io/proxy-body-size"]
    number, unit = re.fullmatch(r"(\d+)([kmg]?)", size.lower()).groups()
    limit = int(number) * {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3}[unit]
    max_upload = int(re.search(r'"SKINATTN_MAX_UPLOAD_BYTES", (\d+) \* 1024 \* 1024', SERVICE_SOURCE).group(1)) * 1024**2
    overhead = int(re.search(r"_FORM_OVERHEAD_BYTES = (\d+) \* 1024", SERVICE_SOURCE).group(1)) * 1024
    assert limit >= max_upload + overhead
