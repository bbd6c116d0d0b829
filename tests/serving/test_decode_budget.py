"""The decode budget shared by the requests in flight (issue 11, item 4): many large-but-allowed images at
once are answered 503 with Retry-After instead of exhausting the server's memory."""

from __future__ import annotations

import concurrent.futures
import threading

import numpy as np
import pytest
from _serving_helpers import encode, post_image, running_server
from PIL import Image

from serving.decode_budget import BudgetSpent, DecodeBudget


def test_reservations_add_up_and_are_returned():
    budget = DecodeBudget(100, 60)
    with budget.reserve(60):
        with budget.reserve(40):
            assert budget.in_use == 100
            with pytest.raises(BudgetSpent, match="100 of 100 pixels are being decoded; this image needs 1"):
                with budget.reserve(1):
                    pass
        assert budget.in_use == 60
    assert budget.in_use == 0
    with pytest.raises(RuntimeError):  # released on errors too
        with budget.reserve(100):
            raise RuntimeError("decode failed")
    assert budget.in_use == 0


def test_the_heap_is_trimmed_once_when_the_last_decode_of_a_large_burst_ends(monkeypatch):
    from serving import decode_budget

    trims = []
    monkeypatch.setattr(decode_budget, "return_freed_memory", lambda: trims.append(budget.in_use))
    large, small = decode_budget.TRIM_FROM_PIXELS, decode_budget.TRIM_FROM_PIXELS - 1
    budget = DecodeBudget(3 * large, large)
    with budget.reserve(large):
        with budget.reserve(large):
            pass
        assert trims == []  # another decode is still filling its pages: not now
    assert trims == [0]  # the burst is over: once
    with budget.reserve(small):
        pass
    assert trims == [0]  # small decodes alone never pay for a trim
    with pytest.raises(RuntimeError), budget.reserve(large):
        raise RuntimeError("decode failed")
    assert trims == [0, 0]  # a failed large decode freed its memory too


@pytest.mark.skipif(__import__("platform").libc_ver()[0] != "glibc", reason="malloc_trim is glibc's")
def test_freed_memory_can_be_returned_on_this_c_library():
    from serving.decode_budget import return_freed_memory

    assert return_freed_memory() is True  # glibc here and in the images: malloc_trim exists


def test_a_budget_smaller_than_one_image_is_refused():
    with pytest.raises(ValueError, match="smaller than one allowed image"):
        DecodeBudget(10, 11)


@pytest.mark.slow
def test_concurrent_large_images_beyond_the_budget_get_503_with_retry_after(tmp_path):
    # Budget for exactly one 2000×2000 PNG: of 8 uploads released together, those that arrive while
    # another is being decoded are turned away; the others are classified, and the server stays healthy.
    # The same picture as a JPEG is decoded (and charged) at 1/8 scale for the model: all 8 fit at once.
    side = 2000
    env = {"SKINATTN_MAX_PIXELS": str(side * side), "SKINATTN_DECODE_BUDGET_PIXELS": str(side * side),
           "SKINATTN_MAX_UPLOAD_BYTES": str(4_000_000)}  # fmt: skip
    ramp = np.linspace(0, 255, side, dtype=np.uint8)
    picture = Image.fromarray(np.stack([np.tile(ramp, (side, 1))] * 3, axis=-1))
    data, jpeg = encode(picture, "PNG"), encode(picture, "JPEG")
    with running_server(tmp_path, **env) as server:

        def burst(payload: bytes) -> list:
            start = threading.Barrier(8)

            def send(_: int):
                with server.client() as client:
                    start.wait()
                    return post_image(client, payload)

            with concurrent.futures.ThreadPoolExecutor(8) as pool:
                return list(pool.map(send, range(8)))

        answers = burst(data)
        codes = sorted(a.status_code for a in answers)
        assert set(codes) <= {200, 503} and 200 in codes, codes
        busy = [a for a in answers if a.status_code == 503]
        assert busy, f"no request was turned away: {codes}"
        for answer in busy:
            assert answer.headers["retry-after"] == "1"
            assert "busy decoding other images" in answer.json()["error"]
        with server.client() as client:  # the budget was returned: alone, the same image fits
            assert post_image(client, data).status_code == 200
        assert [a.status_code for a in burst(jpeg)] == [200] * 8
