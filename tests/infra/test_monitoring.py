"""The optional monitoring pieces of infra/k8s, read from the source files (no kubectl, no cluster).

- ``components/monitoring``: a ServiceMonitor (Prometheus Operator) for the serving Service, kept out of base
  and the overlays so that clusters without the operator's CRD can apply them;
- ``infra/schemas`` + ``infra/validate_custom.py``: the vendored ServiceMonitor schema and the check that
  ``make lint-infra`` runs on custom resources (kubernetes-validate only warns about them);
- ``components/hpa-request-rate``: the HPA option on a request-rate metric, served by the Prometheus Adapter
  with the rules beside it.

That BentoML's /metrics really has the series these rely on is checked against a running server
(``tests/serving/test_endpoint.py``).
"""

from __future__ import annotations

import copy
import re
from pathlib import Path

import pytest
import yaml

from skinattn_components import cluster

REPO = Path(__file__).resolve().parents[2]
K8S = REPO / "infra" / "k8s"
MONITORING = K8S / "components" / "monitoring"
HPA_OPTION = K8S / "components" / "hpa-request-rate"
SERVING = K8S / "base" / "serving"
OPTIONAL = ("monitoring", "hpa-request-rate")


def yaml_docs(path: Path) -> list[dict]:
    with path.open(encoding="utf-8") as stream:
        return [doc for doc in yaml.safe_load_all(stream) if doc]


def one(path: Path, kind: str) -> dict:
    (doc,) = [d for d in yaml_docs(path) if d.get("kind") == kind]
    return doc


def service_monitor() -> dict:
    return one(MONITORING / "servicemonitor.yaml", "ServiceMonitor")


def seconds(duration: str) -> float:
    """A Prometheus duration (``30s``, ``1m30s``, ``500ms``) in seconds."""
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}
    parts = re.findall(r"(\d+)(ms|[smhdwy])", duration)
    assert "".join(n + u for n, u in parts) == duration, duration
    return sum(int(n) * units[u] for n, u in parts)


# --- base stays applicable without the Prometheus Operator -------------------------------------------------


def test_base_and_overlays_hold_no_prometheus_operator_object_and_do_not_include_the_options():
    for path in [*(K8S / "base").rglob("*.yaml"), *(K8S / "overlays").rglob("*.yaml")]:
        for doc in yaml_docs(path):
            assert not str(doc.get("apiVersion", "")).startswith("monitoring.coreos.com/"), path
            for entry in doc.get("components", []) if doc.get("kind") == "Kustomization" else []:
                assert not entry.rstrip("/").endswith(tuple(f"components/{name}" for name in OPTIONAL)), path


def test_the_options_are_kustomize_components():
    for name, expected in (("monitoring", {"resources": ["servicemonitor.yaml"]}), ("hpa-request-rate", {})):
        (kustomization,) = yaml_docs(K8S / "components" / name / "kustomization.yaml")
        assert kustomization["kind"] == "Component" and kustomization["apiVersion"] == "kustomize.config.k8s.io/v1alpha1"
        for key, value in expected.items():
            assert kustomization[key] == value


# --- the ServiceMonitor ------------------------------------------------------------------------------------


def test_the_service_monitor_selects_the_serving_service_in_its_namespace(clean_env):
    monitor, service = service_monitor(), one(SERVING / "service.yaml", "Service")
    assert monitor["metadata"]["namespace"] == cluster.namespace()  # a Component gets no namespace from base
    assert "namespaceSelector" not in monitor["spec"]  # its own namespace, where the Service is
    selector = monitor["spec"]["selector"]
    assert set(selector) == {"matchLabels"}
    assert selector["matchLabels"].items() <= service["metadata"]["labels"].items()


def test_the_service_monitor_scrapes_metrics_on_the_services_named_port():
    (endpoint,) = service_monitor()["spec"]["endpoints"]
    service = one(SERVING / "service.yaml", "Service")
    (container,) = one(SERVING / "deployment.yaml", "Deployment")["spec"]["template"]["spec"]["containers"]
    (port,) = [p for p in service["spec"]["ports"] if p.get("name") == endpoint["port"]]
    (container_port,) = [p for p in container["ports"] if p["name"] == port["targetPort"]]
    assert container_port["containerPort"] == 3000  # BentoML's one port: API, probes and /metrics
    assert (endpoint["path"], endpoint["scheme"]) == ("/metrics", "http")
    assert seconds(endpoint["scrapeTimeout"]) <= seconds(endpoint["interval"]) <= 60  # the operator refuses timeout > interval
    # /metrics is open when the API token is set, so the scrape carries no credentials; BentoML's "endpoint"
    # label must not overwrite the target's (the docs and the adapter rules use exported_endpoint).
    assert not {"authorization", "bearerTokenSecret", "basicAuth", "oauth2", "tlsConfig"} & endpoint.keys()
    assert endpoint.get("honorLabels", False) is False


def test_metrics_stay_open_when_the_api_token_is_set():
    from serving.auth import OPEN_PATHS

    assert "/metrics" in OPEN_PATHS


def test_the_network_policy_admits_the_scrape_port():
    (policy,) = [d for d in yaml_docs(SERVING / "networkpolicy.yaml") if d["metadata"]["name"] == "skinattn-serving-ingress"]
    (rule,) = policy["spec"]["ingress"]
    assert "from" not in rule  # any namespace, Prometheus' included
    assert {p["port"] for p in rule["ports"]} == {service_monitor()["spec"]["endpoints"][0]["port"]}


# --- the vendored schema and the custom-resource check of make lint-infra ----------------------------------


@pytest.fixture(scope="module")
def validate_custom():
    pytest.importorskip("jsonschema")
    from infra import validate_custom

    return validate_custom


def test_schema_names_follow_kubernetes_validate(validate_custom):
    assert validate_custom.schema_name(service_monitor()) == "servicemonitor-monitoring-v1.json"
    assert validate_custom.schema_name({"apiVersion": "apps/v1", "kind": "Deployment"}) == "deployment-apps-v1.json"
    assert validate_custom.schema_name({"apiVersion": "v1", "kind": "Service"}) == "service-v1.json"
    assert (validate_custom.SCHEMA_DIR / "servicemonitor-monitoring-v1.json").is_file()


def test_the_vendored_schema_accepts_the_service_monitor(validate_custom):
    assert validate_custom.vendored_schema_errors(service_monitor()) == []


def endpoint_of(doc: dict) -> dict:
    return doc["spec"]["endpoints"][0]


MISTAKES = {
    "unknown endpoint field": lambda d: endpoint_of(d).update(intervall="30s"),
    "interval with a space": lambda d: endpoint_of(d).update(interval="30 s"),
    "scheme": lambda d: endpoint_of(d).update(scheme="tcp"),
    "port as a number": lambda d: endpoint_of(d).update(port=3000),
    "no selector": lambda d: d["spec"].pop("selector"),
    "no endpoints": lambda d: d["spec"].update(endpoints=[]),
    "unknown spec field": lambda d: d["spec"].update(endpoint=[]),
    "wrong apiVersion": lambda d: d.update(apiVersion="monitoring.coreos.com/v1alpha1"),
    "relabel action": lambda d: endpoint_of(d).update(metricRelabelings=[{"action": "rename"}]),
}


@pytest.mark.parametrize("case", sorted(MISTAKES))
def test_the_vendored_schema_refuses_mistakes(validate_custom, case):
    doc = copy.deepcopy(service_monitor())
    MISTAKES[case](doc)
    if case == "wrong apiVersion":  # another version has no vendored schema: the check fails it as unknown
        assert validate_custom.vendored_schema_errors(doc) is None
        assert validate_custom.check([doc], knows=lambda obj: False)
    else:
        assert validate_custom.vendored_schema_errors(doc)


def test_a_kind_with_no_schema_anywhere_fails_and_built_in_kinds_are_left_alone(validate_custom, capsys):
    widget = {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}}
    (problem,) = validate_custom.check([widget], knows=lambda obj: False)
    assert "Widget/w" in problem and "no schema" in problem
    service = one(SERVING / "service.yaml", "Service")
    assert validate_custom.check([service], knows=lambda obj: obj["kind"] == "Service") == []
    assert validate_custom.check([service_monitor()], knows=lambda obj: False) == []
    assert "ok   ServiceMonitor/skinattn-serving" in capsys.readouterr().out


# --- the request-rate HPA option ---------------------------------------------------------------------------


def adapter_rules() -> list[dict]:
    return yaml_docs(HPA_OPTION / "prometheus-adapter-values.yaml")[0]["rules"]["custom"]


def hpa_patch() -> tuple[dict, list[dict]]:
    (kustomization,) = yaml_docs(HPA_OPTION / "kustomization.yaml")
    (patch,) = kustomization["patches"]
    return patch["target"], yaml.safe_load(patch["patch"])


def test_the_hpa_option_adds_a_pods_metric_to_the_serving_hpa_and_keeps_cpu():
    target, ops = hpa_patch()
    hpa = one(SERVING / "hpa.yaml", "HorizontalPodAutoscaler")
    assert target == {"kind": "HorizontalPodAutoscaler", "name": hpa["metadata"]["name"]}
    (op,) = ops
    assert (op["op"], op["path"]) == ("add", "/spec/metrics/-")  # appended: CPU stays a signal
    assert [m["type"] for m in hpa["spec"]["metrics"]] == ["Resource"]
    metric = op["value"]
    assert metric["type"] == "Pods"
    assert metric["pods"]["target"]["type"] == "AverageValue" and float(metric["pods"]["target"]["averageValue"]) > 0


def test_the_hpa_metric_is_served_by_an_adapter_rule():
    _, (op,) = hpa_patch()
    names = [rule["name"]["as"] for rule in adapter_rules()]
    assert op["value"]["pods"]["metric"]["name"] in names
    assert len(names) == len(set(names))


@pytest.mark.parametrize("index", range(2))
def test_the_adapter_rules_map_bentoml_series_to_pods(index):
    rule = adapter_rules()[index]
    series = re.match(r"^(\w+)\{(.*)\}$", rule["seriesQuery"])
    assert series and re.fullmatch(rule["name"]["matches"].strip("^$"), series.group(1))
    assert series.group(1).startswith("bentoml_service_")
    assert 'namespace!=""' in series.group(2) and 'pod!=""' in series.group(2)
    assert rule["resources"]["overrides"] == {"namespace": {"resource": "namespace"}, "pod": {"resource": "pod"}}
    query = rule["metricsQuery"]
    assert "<<.Series>>{<<.LabelMatchers>>," in query and query.endswith("by (<<.GroupBy>>)")
    # The same route and service in the series query and the metrics query; BentoML's "endpoint" label is
    # "exported_endpoint" once scraped through the ServiceMonitor.
    for matcher in ('service_name="skinattn"', 'exported_endpoint="/classify"'):
        assert matcher in series.group(2) and matcher in query
