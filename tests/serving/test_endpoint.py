"""The HTTP endpoint, called over the network on a real ``bentoml serve`` process (see conftest.py)."""

from __future__ import annotations

import base64
import concurrent.futures
import io
import re
import threading

import httpx
import numpy as np
import pytest
import torch
import yaml
from _serving_helpers import REPO, SERVED_TEMPERATURE, check_classification, encode, expected_probabilities, json_error, noise_image, post_image
from PIL import Image

from skinattn.constants import HAM10000_CLASSES
from skinattn.models import load_model

pytestmark = pytest.mark.slow  # starts a server: about 20-40 s on a shared 2-core machine


# ------------------------------------------------------------------------------------------- probes


def test_readyz_was_503_until_the_model_was_loaded_then_probes_answer(server):
    assert server.readyz_codes_before_ready and set(server.readyz_codes_before_ready) == {503}
    with server.client() as client:
        assert client.get("/livez").status_code == 200
        assert client.get("/readyz").status_code == 200
        metrics = client.get("/metrics")
    assert metrics.status_code == 200 and "bentoml_service_request_total" in metrics.text


def _samples(text: str) -> list[tuple[str, dict[str, str]]]:
    """(name, labels) of every sample of a Prometheus text exposition."""
    found = []
    for line in text.splitlines():
        match = re.match(r"^(\w+)\{(.*)\} \S+$", line)
        if match:
            found.append((match.group(1), dict(re.findall(r'(\w+)="([^"]*)"', match.group(2)))))
    return found


def test_metrics_have_the_series_the_monitoring_docs_and_adapter_rules_use(server):
    """docs/serving.md ("Metrics and monitoring") lists BentoML's series and the Prometheus Adapter rules of
    infra/k8s/components/hpa-request-rate query them: both must match what this BentoML really exposes. The
    rules' matchers are written for samples scraped by the ServiceMonitor, where BentoML's "endpoint" label is
    "exported_endpoint" and namespace/pod are target labels the Prometheus Operator adds."""
    with server.client() as client:
        assert post_image(client, encode(noise_image(14), "JPEG")).status_code == 200
        text = client.get("/metrics").text
    samples = _samples(text)
    docs = (REPO / "docs" / "serving.md").read_text()
    section = docs.split("## Metrics and monitoring", 1)[1].split("\n## ", 1)[0]
    documented = re.findall(r"^\| `(bentoml_\w+)` \| (\w+) \|", section, flags=re.M)
    assert len(documented) == 5
    for name, kind in documented:
        assert f"# TYPE {name} {kind}" in text, name
    values = yaml.safe_load((REPO / "infra" / "k8s" / "components" / "hpa-request-rate" / "prometheus-adapter-values.yaml").read_text())
    for rule in values["rules"]["custom"]:
        name, matchers = re.match(r"^(\w+)\{(.*)\}$", rule["seriesQuery"]).groups()
        wanted = {("endpoint" if key == "exported_endpoint" else key): value
                  for key, op, value in re.findall(r'(\w+)(!?=)"([^"]*)"', matchers) if op == "="}  # fmt: skip
        assert any(n == name and wanted.items() <= labels.items() for n, labels in samples), (name, wanted)


def test_without_a_token_the_server_is_open_and_warns_at_start(server):
    with server.client() as client:
        assert post_image(client, encode(noise_image(13), "JPEG")).status_code == 200
    assert "SKINATTN_API_TOKEN is not set" in server.log.read_text()


# --------------------------------------------------------------------------------------- classifying


@pytest.mark.parametrize("fmt, mime", [("JPEG", "image/jpeg"), ("PNG", "image/png")])
def test_classify_matches_the_library_predictor(server, fmt, mime):
    data = encode(noise_image(1), fmt)
    with server.client() as client:
        response = post_image(client, data, f"lesion.{fmt.lower()}", mime)
    assert response.status_code == 200, response.text
    body = response.json()
    probs = check_classification(body)
    # The Predictor applies the card's temperature (SERVED_TEMPERATURE): so must the endpoint.
    assert probs == pytest.approx(expected_probabilities(server, data), abs=1e-5)
    assert body["attention"] is None
    assert f"probabilities: temperature {SERVED_TEMPERATURE:g}, fitted on the validation split" in server.log.read_text()


@pytest.mark.real_data
def test_classify_a_real_dermoscopy_image(server, real_data_dir):
    path = sorted((real_data_dir / "ham10000-224" / "images").glob("*.jpg"))[0]
    with server.client() as client:
        response = post_image(client, path.read_bytes(), path.name)
    assert response.status_code == 200, response.text
    check_classification(response.json())
    assert response.json()["top_class"] in HAM10000_CLASSES


def sa_feature_map_size(server) -> tuple[int, int]:
    """(h, w) of the feature map the served model's SA layer sees at the model's input size, measured on
    the saved model itself (the trunk's output is the SA layer's input)."""
    model = load_model(server.model_dir)
    size = model.config.input_size
    with torch.inference_mode():
        features = model.trunk(torch.zeros(1, 3, size, size))
    return tuple(features.shape[-2:])


@pytest.mark.parametrize("how", ["field", "query"])
def test_attention_grid_and_overlay(server, how):
    data = encode(noise_image(2, (64, 64)), "PNG")
    with server.client() as client:
        if how == "field":
            response = post_image(client, data, "a.png", "image/png", attention="true")
        else:
            response = client.post("/classify?attention=true", files={"image": ("a.png", data, "image/png")})
    assert response.status_code == 200, response.text
    attention = response.json()["attention"]
    grid = np.asarray(attention["grid"])
    assert grid.shape == sa_feature_map_size(server)
    assert grid.min() == pytest.approx(0.0) and grid.max() == pytest.approx(1.0)  # scaled per image
    overlay = Image.open(io.BytesIO(base64.b64decode(attention["overlay_png"])))
    assert overlay.format == "PNG" and overlay.size == (server.img_size, server.img_size)


def test_concurrent_requests_are_answered_correctly_and_share_forward_passes(server):
    images = [encode(noise_image(100 + i), "JPEG") for i in range(16)]
    with server.client() as client:
        # BentoML's dispatcher calibrates on its first requests, which it serves one at a time.
        sequential = [post_image(client, data).json() for data in images[:12]]
    before_images = server.metric("bentoml_service_adaptive_batch_size_sum")
    before_batches = server.metric("bentoml_service_adaptive_batch_size_count")

    results: list[httpx.Response | None] = [None] * len(images)
    start = threading.Barrier(len(images))

    def call(index: int) -> None:
        with server.client() as client:
            start.wait()
            results[index] = post_image(client, images[index])

    threads = [threading.Thread(target=call, args=(i,)) for i in range(len(images))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)

    for index, response in enumerate(results):
        assert response is not None and response.status_code == 200, getattr(response, "text", "no response")
        probs = check_classification(response.json())
        if index < len(sequential):  # same image alone and in a batch: same answer
            assert probs == pytest.approx(list(sequential[index]["probabilities"].values()), abs=1e-5)
    images_through = server.metric("bentoml_service_adaptive_batch_size_sum") - before_images
    forward_passes = server.metric("bentoml_service_adaptive_batch_size_count") - before_batches
    assert images_through == len(images)
    assert forward_passes < len(images), "no forward pass held more than one image: batching did not happen"


# ------------------------------------------------------------------------------------------ bad input


def _truncated_jpeg() -> bytes:
    return encode(noise_image(3, (200, 150)), "JPEG")[:600]


def _jpeg_magic_then_garbage() -> bytes:
    return b"\xff\xd8\xff" + bytes(range(256)) * 4


def _pixel_bomb_png(server) -> bytes:
    # Over the pixel limit in a few kB: a flat image compresses to almost nothing.
    side = int(server.max_pixels**0.5) + 100
    return encode(Image.new("RGB", (side, side)), "PNG")


BAD_UPLOADS = {
    "text file": (lambda s: b"hello, not an image", 415, "not a JPEG or PNG"),
    "GIF": (lambda s: encode(noise_image(4), "GIF"), 415, "not a JPEG or PNG"),
    "empty file": (lambda s: b"", 400, "empty"),
    "truncated JPEG": (lambda s: _truncated_jpeg(), 400, "uploaded image"),
    "corrupt JPEG": (lambda s: _jpeg_magic_then_garbage(), 400, "uploaded image"),
    "too many bytes": (lambda s: b"\xff\xd8\xff" + b"\0" * (s.max_upload_bytes + 100_000), 413, "over the limit"),
    "too many pixels": (_pixel_bomb_png, 413, "pixels, over the limit"),
}


@pytest.mark.parametrize("case", list(BAD_UPLOADS))
def test_bad_upload_gets_a_4xx_json_error_and_the_server_keeps_serving(server, case):
    make, status, words = BAD_UPLOADS[case]
    with server.client() as client:
        response = post_image(client, make(server))
        assert response.status_code == status, response.text
        assert words in json_error(response)
        assert post_image(client, encode(noise_image(5), "JPEG")).status_code == 200
        assert client.get("/readyz").status_code == 200


BAD_REQUESTS = {
    "JSON instead of a form": (lambda c: c.post("/classify", json={"image": "http://example.com/a.jpg"}), 415),
    "raw JPEG body": (lambda c: c.post("/classify", content=encode(noise_image(6), "JPEG"), headers={"content-type": "image/jpeg"}), 415),
    "no file": (lambda c: c.post("/classify", files={"attention": (None, "true")}), 400),
    "file in another field": (lambda c: c.post("/classify", files={"picture": ("a.jpg", b"\xff\xd8\xff", "image/jpeg")}), 400),
    "two files": (lambda c: c.post("/classify", files=[("image", ("a.jpg", b"1", "image/jpeg")), ("image", ("b.jpg", b"2", "image/jpeg"))]), 400),
    "attention not a boolean": (lambda c: post_image(c, encode(noise_image(7), "JPEG"), attention="maybe"), 400),
    "attention a number other than 0/1": (lambda c: post_image(c, encode(noise_image(7), "JPEG"), attention="2"), 400),
    "attention query not a boolean": (
        lambda c: c.post("/classify?attention=maybe", files={"image": ("a.jpg", encode(noise_image(7), "JPEG"), "image/jpeg")}),
        400,
    ),
    "attention field and query disagree": (
        lambda c: c.post("/classify?attention=false", files={"image": ("a.jpg", encode(noise_image(7), "JPEG"), "image/jpeg")},
                         data={"attention": "true"}),
        400,
    ),
}


@pytest.mark.parametrize("case", list(BAD_REQUESTS))
def test_malformed_request_gets_a_4xx_json_error(server, case):
    send, status = BAD_REQUESTS[case]
    with server.client() as client:
        response = send(client)
        assert response.status_code == status, response.text
        message = json_error(response)  # the service's own {"error": ...}, never BentoML's {"error", "detail"}
        if case.startswith("attention"):
            assert "attention" in message
        assert post_image(client, encode(noise_image(8), "JPEG")).status_code == 200


CONCURRENT_REQUESTS = 256


def test_hundreds_of_concurrent_requests_are_all_answered(server):
    """Zero lost requests under concurrency: 256 uploads released at once from 256 threads, each with its own
    connection, all answered 200 with a classification, and every one went through a forward pass.

    Regression: BentoML's client between the two services recycles its connection pool every 100 calls by
    default, cutting the calls in flight (a 500 each; 71 of 300 measured without the service's
    ``runner_connection`` setting, bentoml/BentoML#5540)."""
    data = encode(noise_image(9), "JPEG")
    before = server.metric("bentoml_service_adaptive_batch_size_sum")
    start = threading.Barrier(CONCURRENT_REQUESTS)

    def call(_: int) -> tuple[int, dict | str]:
        with server.client(timeout=300) as client:
            start.wait()
            response = post_image(client, data)
        return response.status_code, response.json() if response.status_code == 200 else response.text[:200]

    with concurrent.futures.ThreadPoolExecutor(CONCURRENT_REQUESTS) as pool:
        answers = list(pool.map(call, range(CONCURRENT_REQUESTS)))
    codes = [code for code, _ in answers]
    assert codes.count(200) == CONCURRENT_REQUESTS, {code: codes.count(code) for code in set(codes)}
    first = check_classification(answers[0][1])
    for _, body in answers:
        assert check_classification(body) == pytest.approx(first, abs=1e-5)  # same image, same answer
    assert server.metric("bentoml_service_adaptive_batch_size_sum") - before == CONCURRENT_REQUESTS


# ------------------------------------------------------------------------------------------ batch route


@pytest.mark.parametrize("path", ["/classify_batch", "/forward", "/health"])
@pytest.mark.parametrize("content_type", ["application/json", "application/vnd.bentoml+pickle"])
def test_the_model_service_has_no_public_route(server, path, content_type):
    """The batchable API lives on the model service, reachable only through BentoML's socket inside the
    container: the public port has no such route, whatever the body claims to be."""
    with server.client() as client:
        response = client.post(path, content=b"[]", headers={"content-type": content_type})
    assert response.status_code == 404, response.text


def test_the_schema_lists_classify_as_the_only_api(server):
    with server.client() as client:
        paths = client.get("/docs.json").json()["paths"]
    posts = sorted(path for path, operations in paths.items() if "post" in operations)
    assert posts == ["/classify"]


# ------------------------------------------------------------------------------------------ model card


def test_model_card_is_served_as_markdown_and_json(server):
    """The card of the registered version (registered with {"accuracy": 0.5}, no evaluation): the same text the
    registry stored, and its fields as JSON."""
    from skinattn.registry import Registry

    registry = Registry(server.model_dir.parent / "registry")
    with server.client() as client:
        markdown = client.get("/model-card")
        fields = client.get("/model-card", params={"format": "json"})
        bad = client.get("/model-card", params={"format": "pdf"})
        posted = client.post("/model-card", content=b"")
    assert markdown.status_code == 200, markdown.text
    assert markdown.headers["content-type"].startswith("text/markdown")
    assert markdown.text == registry.model_card("production")
    assert "Not for diagnosis" in markdown.text and "**Not evaluated" in markdown.text
    assert fields.status_code == 200 and fields.headers["content-type"] == "application/json"
    card = fields.json()
    assert card["model_details"]["architecture"] == "resnet10t" and card["evaluation"]["evaluated"] is False
    assert card["model_details"]["weights_sha256"] == registry.get("production").files["model.safetensors"].sha256
    assert bad.status_code == 400 and "format must be one of" in json_error(bad)
    assert posted.status_code == 405
