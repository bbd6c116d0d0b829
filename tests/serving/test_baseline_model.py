"""A model built without Soft Attention, served for real: it classifies, and refuses attention=true."""

from __future__ import annotations

import pytest
from _serving_helpers import check_classification, encode, expected_probabilities, json_error, noise_image, post_image, running_server

pytestmark = pytest.mark.slow  # starts a server


@pytest.fixture(scope="module")
def baseline_server(tmp_path_factory: pytest.TempPathFactory):
    """``python -m serving serve`` of the baseline (soft_attention=False) of the tiny test model; one warm-up pass
    is enough here (the 503-before-ready window is tested on the SA server)."""
    with running_server(tmp_path_factory.mktemp("baseline"), soft_attention=False, warmup_passes=1) as running:
        yield running


def test_baseline_model_classifies_without_attention(baseline_server):
    data = encode(noise_image(11), "JPEG")
    with baseline_server.client() as client:
        response = post_image(client, data, attention="false")
    assert response.status_code == 200, response.text
    body = response.json()
    assert check_classification(body) == pytest.approx(expected_probabilities(baseline_server, data), abs=1e-5)
    assert body["attention"] is None


@pytest.mark.parametrize("how", ["field", "query"])
def test_baseline_model_refuses_attention_with_422_and_keeps_serving(baseline_server, how):
    data = encode(noise_image(12), "JPEG")
    with baseline_server.client() as client:
        if how == "field":
            response = post_image(client, data, attention="true")
        else:
            response = client.post("/classify?attention=true", files={"image": ("a.jpg", data, "image/jpeg")})
        assert response.status_code == 422, response.text
        message = json_error(response)
        assert "without a Soft Attention layer" in message and "skinattn:v1" in message
        assert post_image(client, data).status_code == 200


def test_openapi_schema_still_documents_attention_as_a_boolean(baseline_server):
    # The endpoint takes the raw value (to answer bad ones itself); clients reading the schema see a boolean.
    with baseline_server.client() as client:
        schema = client.get("/docs.json")
    assert schema.status_code == 200, schema.text
    forms = [
        body["content"]["multipart/form-data"]["schema"]
        for path in schema.json()["paths"].values()
        for operation in path.values()
        if "multipart/form-data" in operation.get("requestBody", {}).get("content", {})
        for body in [operation["requestBody"]]
    ]
    assert len(forms) == 1, forms
    form = forms[0]
    if "$ref" in form:
        form = schema.json()["components"]["schemas"][form["$ref"].rsplit("/", 1)[1]]
    assert form["properties"]["attention"]["type"] == "boolean"
