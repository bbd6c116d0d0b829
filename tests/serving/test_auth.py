"""The optional bearer token (issue 13, item 3): in-process rules, then over HTTP on a real server with a token."""

from __future__ import annotations


import pytest
from _serving_helpers import asgi_call, encode, json_error, noise_image, post_image, running_server

from serving.auth import OPEN_PATHS, BadToken, BearerTokenAuth, bearer_credentials, configured_token

TOKEN = "s3cr3t-token-for-tests-0123456789abcdef"


# ------------------------------------------------------------------------------------------- in-process


@pytest.mark.parametrize("value", [None, "", "   ", "\n"])
def test_no_token_configured_means_open(value):
    assert configured_token({} if value is None else {"SKINATTN_API_TOKEN": value}) is None


def test_the_configured_token_loses_surrounding_whitespace():
    # kubectl create secret --from-file keeps the file's final newline
    assert configured_token({"SKINATTN_API_TOKEN": f"  {TOKEN}\n"}) == TOKEN


@pytest.mark.parametrize(
    "value, words",
    [("short-token", "at least 16"), ("has a space in the middle!", "cannot carry"), ("tökenwithumlaut0123456", "cannot carry")],
)
def test_an_unusable_token_stops_the_start_without_echoing_it(value, words):
    with pytest.raises(BadToken, match=words) as caught:
        configured_token({"SKINATTN_API_TOKEN": value})
    assert value not in str(caught.value)


@pytest.mark.parametrize(
    "headers, credentials",
    [
        ([(b"authorization", f"Bearer {TOKEN}".encode())], TOKEN),
        ([(b"Authorization", f"bearer   {TOKEN} ".encode())], TOKEN),
        ([(b"authorization", b"Basic dXNlcjpwYXNz")], None),
        ([(b"authorization", b"Bearer ")], None),
        ([(b"x-api-key", TOKEN.encode())], None),
        ([], None),
    ],
)
def test_bearer_credentials_are_read_from_the_authorization_header(headers, credentials):
    assert bearer_credentials(headers) == credentials


def call(middleware: BearerTokenAuth, path: str, headers: list[tuple[bytes, bytes]]) -> tuple[list[dict], bool]:
    """Run one HTTP request through the middleware; (the messages it sent, whether the app was reached)."""
    return asgi_call(middleware, {"type": "http", "method": "POST", "path": path, "headers": headers})


def test_the_middleware_lets_the_right_token_and_the_open_paths_through():
    auth = BearerTokenAuth(None, token=TOKEN)
    assert call(auth, "/classify", [(b"authorization", f"Bearer {TOKEN}".encode())]) == ([], True)
    for path in sorted(OPEN_PATHS):
        assert call(auth, path, []) == ([], True)


@pytest.mark.parametrize("header, error", [(None, None), (b"Bearer wrong-token-0123456789", "invalid_token"), (b"Basic abc", None)])
def test_the_middleware_answers_401_with_a_challenge(header, error):
    auth = BearerTokenAuth(None, token=TOKEN)
    sent, reached = call(auth, "/classify", [(b"authorization", header)] if header else [])
    assert not reached
    start = sent[0]
    assert start["status"] == 401
    challenge = dict(start["headers"])[b"www-authenticate"].decode()
    assert challenge.startswith('Bearer realm="skinattn"')
    assert ('error="invalid_token"' in challenge) is (error is not None)


def test_a_middleware_without_a_token_is_refused():
    with pytest.raises(BadToken):
        BearerTokenAuth(None, token="")


# ---------------------------------------------------------------------------------------------- HTTP


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory):
    with running_server(tmp_path_factory.mktemp("auth"), warmup_passes=1, SKINATTN_API_TOKEN=TOKEN) as running:
        yield running


@pytest.mark.slow
def test_classify_with_the_token_is_answered(secured):
    with secured.client(token=TOKEN) as client:
        response = post_image(client, encode(noise_image(21), "JPEG"))
    assert response.status_code == 200, response.text
    assert "SKINATTN_API_TOKEN is not set" not in secured.log.read_text()


@pytest.mark.slow
@pytest.mark.parametrize("token, challenge", [(None, 'Bearer realm="skinattn"'),
                                              ("wrong-token-0123456789", 'Bearer realm="skinattn", error="invalid_token"'),
                                              (TOKEN[:-1], 'Bearer realm="skinattn", error="invalid_token"')])  # fmt: skip
def test_classify_without_the_right_token_gets_401(secured, token, challenge):
    with secured.client(token=token) as client:
        response = post_image(client, encode(noise_image(22), "JPEG"))
    assert response.status_code == 401, response.text
    assert response.headers["www-authenticate"] == challenge
    assert "bearer token" in json_error(response)


@pytest.mark.slow
def test_the_token_is_checked_before_the_upload_guard(secured):
    # An anonymous oversized upload is refused for the missing token, not read up to the size limit.
    with secured.client() as client:
        response = post_image(client, b"\xff\xd8\xff" + b"\0" * (secured.max_upload_bytes + 100_000))
    assert response.status_code == 401, response.text


@pytest.mark.slow
@pytest.mark.parametrize("path", ["/livez", "/readyz", "/metrics"])
def test_probes_and_metrics_stay_open(secured, path):
    with secured.client() as client:
        assert client.get(path).status_code == 200


@pytest.mark.slow
def test_the_schema_and_unknown_routes_need_the_token_too(secured):
    with secured.client() as anonymous, secured.client(token=TOKEN) as allowed:
        assert anonymous.get("/docs.json").status_code == 401
        assert allowed.get("/docs.json").status_code == 200
        assert anonymous.post("/classify_batch", json=[]).status_code == 401
        assert allowed.post("/classify_batch", json=[]).status_code == 404  # no such public route


@pytest.mark.slow
def test_the_model_card_needs_the_token_like_classify(secured):
    """GET /model-card describes the model that /classify uses: behind the token, unlike the probes."""
    with secured.client() as anonymous, secured.client(token=TOKEN) as allowed:
        assert anonymous.get("/model-card").status_code == 401
        response = allowed.get("/model-card")
    assert response.status_code == 200 and response.text.startswith("# Model card: resnet10t")
