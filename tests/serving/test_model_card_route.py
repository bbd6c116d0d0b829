"""``GET /model-card`` in-process: the route as an ASGI app over a model folder (no server, no weights)."""

from __future__ import annotations

import json
from pathlib import Path

from _serving_helpers import asgi_call

from serving.model_card import ModelCardRoute
from skinattn.model_card import CARD_JSON, CARD_MARKDOWN, card_files
from skinattn.models.weights import CARD_FILE

MODEL_JSON = {"config": {"arch": "resnet50", "soft_attention": True, "input_size": 224, "class_names": ["mel", "nv"]}}


def get(route: ModelCardRoute, query: bytes = b"") -> tuple[int, dict[bytes, bytes], bytes, bool]:
    """One GET through the route: (status, headers, body, whether the wrapped app was reached)."""
    scope = {"type": "http", "method": "GET", "path": "/model-card", "query_string": query, "headers": []}
    (start, body), reached = asgi_call(route, scope)
    return start["status"], dict(start["headers"]), body["body"], reached


def test_a_model_exported_before_cards_existed_gets_its_card_built_from_model_json(tmp_path: Path):
    (tmp_path / CARD_FILE).write_text(json.dumps(MODEL_JSON), encoding="utf-8")
    metrics = {"accuracy": 0.5}
    (tmp_path / "metrics.json").write_text(json.dumps(metrics), encoding="utf-8")
    expected = card_files(MODEL_JSON, metrics)
    route = ModelCardRoute(None, lambda: tmp_path)

    status, headers, body, reached = get(route)
    assert (status, reached) == (200, False)
    assert headers[b"content-type"] == b"text/markdown; charset=utf-8"
    assert body.decode("utf-8") == expected[CARD_MARKDOWN]

    status, headers, body, _ = get(route, b"format=json")
    assert status == 200
    assert headers[b"content-type"] == b"application/json"
    assert body.decode("utf-8") == expected[CARD_JSON]
    # Served from memory: nothing is written into the (BentoML-owned) model folder.
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([CARD_FILE, "metrics.json"])


def test_the_card_files_in_the_folder_are_served_as_they_are(tmp_path: Path):
    (tmp_path / CARD_FILE).write_text(json.dumps(MODEL_JSON), encoding="utf-8")
    (tmp_path / CARD_MARKDOWN).write_text("# stored card\n", encoding="utf-8")
    status, _, body, _ = get(ModelCardRoute(None, lambda: tmp_path))
    assert (status, body) == (200, b"# stored card\n")


def test_a_folder_without_model_json_answers_404(tmp_path: Path):
    status, _, body, reached = get(ModelCardRoute(None, lambda: tmp_path))
    assert (status, reached) == (404, False)
    assert "export it again" in json.loads(body)["error"]
