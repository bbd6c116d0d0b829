"""SKINATTN_MODEL_INFLIGHT: at most that many requests wait for the model service at once; the rest wait in the
API service (for at most SKINATTN_MAX_LATENCY_MS). Checked on a real server through BentoML's own batch-size
histogram: a forward pass can never hold more images than were let through to the model service."""

from __future__ import annotations

import concurrent.futures
import threading

import httpx
import pytest
from _serving_helpers import check_classification, encode, noise_image, post_image, running_server

CAP = 2


def _batch_sizes(server) -> dict[str, float]:
    """Cumulative bucket counts of the model service's adaptive batch size histogram, by upper bound."""
    text = httpx.get(f"{server.url}/metrics", timeout=10).text
    buckets: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("bentoml_service_adaptive_batch_size_bucket{"):
            bound = line.split('le="', 1)[1].split('"', 1)[0]
            buckets[bound] = buckets.get(bound, 0.0) + float(line.rsplit(" ", 1)[1])
    return buckets


@pytest.mark.slow
def test_no_forward_pass_holds_more_requests_than_the_cap_lets_through(tmp_path):
    images = [encode(noise_image(300 + i), "JPEG") for i in range(16)]
    with running_server(tmp_path, SKINATTN_MODEL_INFLIGHT=str(CAP)) as server:
        with server.client() as client:  # BentoML's dispatcher calibrates on its first requests
            for data in images[:8]:
                assert post_image(client, data).status_code == 200
        before = _batch_sizes(server)
        start = threading.Barrier(len(images))

        def send(index: int) -> httpx.Response:
            with server.client() as client:
                start.wait()
                return post_image(client, images[index])

        with concurrent.futures.ThreadPoolExecutor(len(images)) as pool:
            answers = list(pool.map(send, range(len(images))))
        for answer in answers:
            assert answer.status_code == 200, answer.text
            check_classification(answer.json())
        after = _batch_sizes(server)
    passes = after["+Inf"] - before["+Inf"]
    within_cap = after[f"{float(CAP)}"] - before[f"{float(CAP)}"]
    # Without the cap, 16 requests released together share a few passes of up to 8 (the CPU max batch).
    assert passes >= len(images) / CAP and within_cap == passes, (before, after)
