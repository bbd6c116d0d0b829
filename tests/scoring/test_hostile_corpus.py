"""A hostile corpus (issue 11): about 25 kinds of bad or odd input in one ISIC-archive-shaped folder, generated
here (no binary fixture is committed), run through the real commands as a user runs them:
``skinattn ingest`` in both ``--on-error`` modes and ``skinattn score``.

For every kind: a correct decode or an error that names the file; never a traceback, never a hang; nothing
written outside the output folder; and the peak memory of each command stays under a stated bound.
"""

from __future__ import annotations

import csv
import io
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from _scoring_fixtures import REPO, cli_env, jpeg_bytes
from PIL import Image

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

# Peak RSS of one command over this corpus (torch and a resnet10t included); decoding any one file of it
# costs far less, and a file read whole into memory (1 GB of zeros, /dev/zero) would blow through it.
PEAK_RSS_BOUND_MB = 1500


def _image_bytes(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def _picture(size: tuple[int, int] = (48, 40), mode: str = "RGB") -> Image.Image:
    rng = np.random.default_rng(sum(size))
    return Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)).convert(mode)


def _declared_size_jpeg(width: int, height: int) -> bytes:
    """A small JPEG whose SOF header declares width × height (a decompression bomb's header)."""
    data = bytearray(jpeg_bytes(7))
    sof = data.index(b"\xff\xc0")
    data[sof + 5 : sof + 9] = height.to_bytes(2, "big") + width.to_bytes(2, "big")
    return bytes(data)


def build_corpus(folder: Path, outside: Path) -> dict[str, str]:
    """Write the corpus; return {file name: "ok" | a phrase its error must contain}."""
    folder.mkdir(parents=True)
    outside.mkdir(parents=True)
    good = jpeg_bytes(1, 48)
    files: dict[str, tuple[bytes | None, str]] = {
        "ISIC_0000001.jpg": (good, "ok"),
        "ISIC_0000002.png": (_image_bytes(_picture(), "PNG"), "ok"),
        "ISIC_0000003.jpg": (_image_bytes(_picture(mode="CMYK"), "JPEG"), "ok"),  # CMYK JPEG
        "ISIC_0000004.png": (_image_bytes(_picture(mode="P"), "PNG", transparency=0), "ok"),  # palette + alpha
        "ISIC_0000005.jpg": (_image_bytes(_picture(mode="L"), "JPEG"), "ok"),  # greyscale
        "ISIC_0000006.png": (_image_bytes(Image.fromarray(np.full((40, 40), 40000, np.uint16)), "PNG"), "ok"),  # 16 bit
        "ISIC_0000007.jpg": (good + b"trailing garbage" * 100, "ok"),  # bytes after the end marker
        "ISIC_0000008.jpg": (_image_bytes(_picture((1, 1)), "JPEG"), "ok"),  # one pixel
        "ISIC_0000009.png": (_image_bytes(_picture(mode="RGBA"), "PNG"), "ok"),  # alpha channel
        "ISIC_0000010.jpg": (b"", "empty file"),
        "ISIC_0000011.jpg": (good[: len(good) // 2], "ISIC_0000011"),  # truncated
        "ISIC_0000012.jpg": (b"this is not an image\n" * 20, "not a readable image"),
        "ISIC_0000013.png": (b"<html><body>404 Not Found</body></html>", "not a readable image"),
        "ISIC_0000014.jpg": (_declared_size_jpeg(60000, 60000), "pixels"),  # decompression bomb header
        "ISIC_0000015.png": (_image_bytes(_picture(), "PNG")[:-20] + b"\x00" * 20, "ISIC_0000015"),  # broken tail
        "ISIC_0000016.tif": (_image_bytes(Image.fromarray(np.ones((8, 8), np.float32)), "TIFF"), "floating-point"),
        "ISIC_0000017.jpg": (_image_bytes(_picture(), "PNG"), "ok"),  # a PNG named .jpg: decoded by content
        "ISIC_0000018.jpg": (bytes(range(256)) * 8, "not a readable image"),  # random binary
        "ISIC_0000019.jpg": (None, "named pipe"),  # FIFO
        "ISIC_0000020.jpg": (None, "outside"),  # link to /dev/zero
        "ISIC_0000021.jpg": (None, "outside"),  # link to a real image outside the folder
        "ISIC_0000022.jpg": (None, "No such file"),  # dangling link
        "ISIC_0000023.jpg": (None, "no image file"),  # a folder named like an image
        "ISIC_0000024.jpg": (_image_bytes(_picture(), "GIF"), "ok"),  # GIF named .jpg
        "ISIC_0000025.png": (_image_bytes(_picture(), "BMP"), "ok"),  # BMP named .png
    }
    for name, (data, _) in files.items():
        if data is not None:
            (folder / name).write_bytes(data)
    os.mkfifo(folder / "ISIC_0000019.jpg")
    (folder / "ISIC_0000020.jpg").symlink_to("/dev/zero")
    (outside / "secret.jpg").write_bytes(good)
    (folder / "ISIC_0000021.jpg").symlink_to(outside / "secret.jpg")
    (folder / "ISIC_0000022.jpg").symlink_to(folder / "gone.jpg")
    (folder / "ISIC_0000023.jpg").mkdir()
    with (folder / "metadata.csv").open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["isic_id", "attribution", "copyright_license"])
        writer.writerows([Path(name).stem, "Anonymous", "CC-BY"] for name in files)
    return {name: expected for name, (_, expected) in files.items()}


# Runs a command and reports the peak RSS of it and its children (DataLoader workers), which a wrapper process
# can measure exactly: its own RUSAGE_CHILDREN holds nothing else.
_PEAK = """
import resource, subprocess, sys
code = subprocess.run(sys.argv[1:]).returncode
print(f"PEAK_RSS_KB={resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}", file=sys.stderr)
sys.exit(code)
"""


def _run(args: list[str], cwd: Path) -> tuple[subprocess.CompletedProcess, float]:
    """Run ``skinattn ARGS``; return the result (the peak line taken out of stderr) and its peak RSS in MB."""
    result = subprocess.run([sys.executable, "-c", _PEAK, sys.executable, "-m", "skinattn", *args], cwd=cwd,
                            env=cli_env(), capture_output=True, text=True, timeout=300)  # fmt: skip
    head, _, peak = result.stderr.rpartition("PEAK_RSS_KB=")
    result.stderr = head
    return result, int(peak.strip()) / 1024


def _snapshot(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("hostile")
    expected = build_corpus(root / "archive", root / "elsewhere")
    return root, expected


def _check_reasons(text: str, expected: dict[str, str]) -> None:
    for name, phrase in expected.items():
        if phrase == "ok":
            continue
        lines = [line for line in text.splitlines() if Path(name).stem in line]
        assert lines, f"{name} is not named anywhere in:\n{text[-3000:]}"
        assert any(phrase in line for line in lines), f"{name}: expected '{phrase}' in {lines}"


@pytest.mark.parametrize("mode", ["fail", "quarantine"])
def test_ingest_names_every_bad_file(corpus, tmp_path, mode):
    root, expected = corpus
    before = _snapshot(root)
    out = tmp_path / "manifest"
    result, peak_mb = _run(["ingest", str(root / "archive"), "--format", "isic-archive", "--out", str(out),
                            "--on-error", mode, "--no-progress"], cwd=tmp_path)  # fmt: skip
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    assert _snapshot(root) == before, "ingest wrote into the source or beside it"
    _check_reasons(result.stderr, expected)
    assert peak_mb < PEAK_RSS_BOUND_MB
    if mode == "fail":
        assert result.returncode == 2 and not (out / "manifest.csv").exists()  # only the report of the problems
        return
    assert result.returncode == 0, result.stderr[-2000:]
    rows = list(csv.DictReader((out / "manifest.csv").open(encoding="utf-8")))
    kept = sorted(Path(r["image_path"]).name for r in rows)
    assert kept == sorted(name for name, phrase in expected.items() if phrase == "ok")


def test_score_decodes_the_good_and_names_the_bad(corpus, tmp_path, model_dir):
    root, expected = corpus
    before = _snapshot(root)
    out = tmp_path / "scored" / "predictions.csv"
    result, peak_mb = _run(["score", str(root / "archive"), "--out", str(out), "--model", str(model_dir),
                            "--workers", "0"], cwd=tmp_path)  # fmt: skip
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    assert result.returncode == 0, result.stderr[-2000:]
    assert _snapshot(root) == before
    assert peak_mb < PEAK_RSS_BOUND_MB
    scored = {row["file"] for row in csv.DictReader(out.open(encoding="utf-8"))}
    assert scored == {name for name, phrase in expected.items() if phrase == "ok"}
    errors = (tmp_path / "scored" / "predictions_errors.csv").read_text(encoding="utf-8")
    # A folder named like an image is no file to score (ingest names it: its metadata row has no image).
    _check_reasons(errors, {name: phrase for name, phrase in expected.items() if phrase != "no image file"})
    assert sorted(p.name for p in (tmp_path / "scored").iterdir()) == sorted(
        p.name for p in (tmp_path / "scored").iterdir() if p.name.startswith("predictions")
    ), "score wrote outside its output's name"
    assert str(REPO) not in errors  # errors name the files, not the server's paths of the project
