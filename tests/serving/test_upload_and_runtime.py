"""The request checks and the batch runtime, in-process (no server): fast and exact."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image

from serving.options import BadOption, attention_wanted
from serving.runtime import Preprocessor, ServingModel
from serving.upload import UploadRejected, read_upload
from skinattn.inference import Predictor
from skinattn.models import create_model, save_model


def jpeg(size=(40, 30), seed=0) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG")
    return buffer.getvalue()


@pytest.mark.parametrize(
    "data, status, words",
    [
        (b"", 400, "empty"),
        (b"GIF89a....", 415, "not a JPEG or PNG"),
        (jpeg()[:200], 400, "uploaded image"),
        (jpeg(), 413, "bytes, over the limit"),  # with max_bytes below the file size
        (jpeg((300, 300)), 413, "pixels, over the limit"),
    ],
    ids=["empty", "gif", "truncated", "bytes", "pixels"],
)
def test_read_upload_refuses_with_status_and_reason(data, status, words):
    max_bytes = 100 if words.startswith("bytes") else 10**6
    with pytest.raises(UploadRejected) as caught:
        read_upload(data, max_bytes=max_bytes, max_pixels=50_000)
    assert caught.value.status == status and words in caught.value.message


def test_read_upload_returns_rgb():
    image = read_upload(jpeg(), max_bytes=10**6, max_pixels=10**6)
    assert image.mode == "RGB" and image.size == (40, 30)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    torch.manual_seed(0)
    return save_model(create_model("resnet10t", soft_attention=True, img_size=64), tmp_path_factory.mktemp("m") / "model")


def test_split_preprocessing_equals_the_predictor(model_dir):
    """The API service prepares each image alone (the card only), the model service classifies the batch that
    BentoML concatenates along axis 0: the numbers are the library Predictor's."""
    images = [Image.open(io.BytesIO(jpeg((90, 70), seed))) for seed in range(3)]
    prep = Preprocessor(model_dir)
    pixels = [prep.prepare(image) for image in images]
    assert all(p.shape == (1, 3, 64, 64) and p.dtype == np.uint8 for p in pixels)
    rows = ServingModel(model_dir).classify(np.concatenate(pixels))
    expected = Predictor(model_dir).predict(images)
    assert rows.dtype.names == ("probabilities", "attention")
    for row, want in zip(rows, expected):
        assert row["probabilities"].tolist() == pytest.approx(list(want.probabilities.values()), abs=1e-6)
        assert row["attention"].shape == (2, 2)


def test_each_caller_gets_its_own_rows_of_a_batch(model_dir):
    """BentoML splits a batchable API's ndarray output at the callers' offsets (np.split along axis 0): the
    record array does not mix them up, and an image's answer does not depend on its batch-mates."""
    prep, model = Preprocessor(model_dir), ServingModel(model_dir)
    pixels = [prep.prepare(Image.open(io.BytesIO(jpeg((50, 40), seed)))) for seed in range(4)]
    alone = [model.classify(p)[0] for p in pixels]
    parts = np.split(model.classify(np.concatenate(pixels)), [1, 2, 3])
    for part, single in zip(parts, alone):
        assert part.shape == (1,)
        assert part[0]["probabilities"].tolist() == pytest.approx(single["probabilities"].tolist(), abs=1e-5)
        np.testing.assert_allclose(part[0]["attention"], single["attention"], atol=1e-4)  # min-max scaled: looser


@pytest.mark.parametrize(
    "pixels, words",
    [
        ([[0]], "expected a numpy array"),
        (np.zeros((1, 3, 64, 64), dtype=np.float32), "uint8"),
        (np.zeros((3, 64, 64), dtype=np.uint8), "(N, 3, 64, 64)"),
        (np.zeros((2, 3, 32, 32), dtype=np.uint8), "(2, 3, 32, 32)"),
    ],
    ids=["list", "float", "no batch axis", "other size"],
)
def test_the_model_refuses_what_is_not_a_batch_of_prepared_images(model_dir, pixels, words):
    with pytest.raises(ValueError) as caught:
        ServingModel(model_dir).classify(pixels)
    assert words in str(caught.value)


def test_a_read_only_batch_is_classified(model_dir):
    pixels = np.zeros((2, 3, 64, 64), dtype=np.uint8)
    pixels.flags.writeable = False  # what a pickle buffer can be
    assert ServingModel(model_dir).classify(pixels).shape == (2,)


def test_a_baseline_model_answers_probabilities_only(tmp_path):
    torch.manual_seed(0)
    model_dir = save_model(create_model("resnet10t", soft_attention=False, img_size=64), tmp_path / "model")
    prep = Preprocessor(model_dir)
    assert prep.has_attention is False
    rows = ServingModel(model_dir).classify(prep.prepare(Image.open(io.BytesIO(jpeg()))))
    assert rows.dtype.names == ("probabilities",)


@pytest.mark.parametrize(
    "form, query, wanted",
    [(None, None, False), (True, None, True), (1, None, True), (False, None, False), (0, None, False),
     (" Yes ", None, True), (None, "true", True), (None, "off", False), (True, "1", True), (False, "no", False)],
)
def test_attention_wanted_reads_form_and_query(form, query, wanted):
    assert attention_wanted(form, query) is wanted


@pytest.mark.parametrize(
    "form, query, words",
    [("maybe", None, "'maybe' in the form field"), (2, None, "got 2"), (1.0, None, "got 1.0"), ([True], None, "got [True]"),
     (None, "", "query parameter"), (None, "maybe", "'maybe' in the query parameter"), (True, "false", "send it once")],
)
def test_attention_wanted_refuses_other_values_naming_them(form, query, words):
    with pytest.raises(BadOption, match="attention") as caught:
        attention_wanted(form, query)
    assert words in str(caught.value)


def test_a_large_jpeg_is_charged_and_decoded_at_the_model_size_a_png_in_full():
    """The endpoint decodes a JPEG at the smallest DCT scale that keeps the model's input size (issue 11,
    item 4), and charges the decode budget only that; the declared size still decides 413."""
    from serving.upload import upload_pixels

    big = jpeg((1600, 1200))
    assert upload_pixels(big, 10**8, 2_000_000) == 1600 * 1200
    assert upload_pixels(big, 10**8, 2_000_000, at_least=64) == 200 * 150  # 1/8 scale
    assert read_upload(big, 10**8, 2_000_000, at_least=64).size == (200, 150)
    with pytest.raises(UploadRejected, match="over the limit of 1,000,000 pixels"):
        upload_pixels(big, 10**8, 1_000_000, at_least=64)
    buffer = io.BytesIO()
    Image.new("RGB", (1600, 1200)).save(buffer, format="PNG")
    assert upload_pixels(buffer.getvalue(), 10**8, 2_000_000, at_least=64) == 1600 * 1200
