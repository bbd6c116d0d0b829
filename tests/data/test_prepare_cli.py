"""``skinattn prepare`` end to end: manifest with splits, balanced index, counts, cache; clear failures."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from skinattn.cli import main
from skinattn.constants import HAM10000_CLASSES
from skinattn.data.balance import expand_index
from skinattn.data.cache import open_cache
from skinattn.data.prepare import read_balanced_index
from skinattn.data.schema import ManifestInfo, read_manifest, write_manifest
from skinattn.data.synthetic import make_sample_dataset

CLASSES = list(HAM10000_CLASSES)


def write_ham_manifest(folder: Path, out: Path, images: str = "") -> Path:
    """A manifest of a HAM10000-layout folder, built directly (ingest is tested on its own)."""
    meta = pd.read_csv(folder / "HAM10000_metadata.csv", dtype=str, keep_default_na=False)
    frame = pd.DataFrame(
        {
            "image_id": meta["image_id"],
            "image_path": [str(folder / images / f"{i}.jpg") for i in meta["image_id"]],
            "label": meta["dx"],
            "lesion_id": meta["lesion_id"],
            "localization": meta["localization"],
        }
    )
    write_manifest(frame, ManifestInfo(classes=CLASSES, format="ham10000", source=str(folder)), out)
    return out


@pytest.fixture(scope="module")
def manifest(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("prepare")
    make_sample_dataset(root / "data", per_class=20, size=32, seed=0)
    return write_ham_manifest(root / "data", root / "manifest")


def test_prepare_writes_split_manifest_balanced_index_and_counts(
    manifest: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "prepared"
    assert main(["prepare", str(manifest), "--out", str(out), "--seed", "3"]) == 0
    printed = capsys.readouterr().out

    frame, info = read_manifest(out)
    assert info.classes == CLASSES and info.format == "ham10000"
    assert info.extra["prepare"]["split"]["seed"] == 3
    assert set(frame["split"]) == {"train", "val", "test"}
    assert "localization" in frame.columns  # the source's metadata columns travel along
    assert (frame.groupby("lesion_id")["split"].nunique() == 1).all()

    train = frame[frame["split"] == "train"]
    index = read_balanced_index(out)
    assert index["image_id"].tolist() == train["image_id"].tolist()
    largest = train["label"].value_counts().max()
    assert index.groupby("label")["repeats"].sum().to_dict() == {c: largest for c in CLASSES}
    assert len(expand_index(index)) == 7 * largest

    counts = json.loads((out / "counts.json").read_text())
    assert counts["splits"]["train"]["total"] == len(train)
    assert counts["balance"]["before"] == {c: int((train["label"] == c).sum()) for c in CLASSES} | {"total": len(train)}
    assert counts["balance"]["after"]["total"] == 7 * largest
    table = (out / "counts.md").read_text()
    assert table in printed and "| mel " in table and "train balanced" in table


def test_prepare_paper_protocol_and_cache(manifest: Path, tmp_path: Path) -> None:
    out = tmp_path / "paper"
    args = ["prepare", str(manifest), "--out", str(out), "--protocol", "paper", "--cache-size", "16"]
    assert main([*args, "--balance-target", "25", "--no-undersample"]) == 0
    frame, _ = read_manifest(out)
    images_per_lesion = frame["lesion_id"].map(frame["lesion_id"].value_counts())
    assert (images_per_lesion[frame["split"] != "train"] == 1).all()
    counts = json.loads((out / "counts.json").read_text())
    assert counts["balance"]["resolved_target"] == 25
    for split in ("train", "val", "test"):
        rows = frame[frame["split"] == split]
        cache = open_cache(rows, out / "cache", 16, split)
        assert cache is not None and len(cache) == len(rows)


def test_prepare_failures_are_one_line_errors(manifest: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["prepare", str(manifest), "--out", str(manifest)]) == 2
    assert "--out must differ" in capsys.readouterr().err

    frame, info = read_manifest(manifest)
    frame.loc[4, "lesion_id"] = ""
    broken = write_manifest(frame, info, tmp_path / "broken").parent
    assert main(["prepare", str(broken), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "row 6" in err and "lesion_id" in err

    assert main(["prepare", str(tmp_path / "nowhere"), "--out", str(tmp_path / "o")]) == 2
    assert "no manifest here" in capsys.readouterr().err

    with pytest.raises(SystemExit):
        main(["prepare", str(manifest), "--out", str(tmp_path / "o"), "--balance-target", "most"])


@pytest.mark.real_data
def test_prepare_real_ham10000_224(real_data_dir: Path, tmp_path: Path) -> None:
    manifest = write_ham_manifest(real_data_dir / "ham10000-224", tmp_path / "manifest", images="images")
    assert main(["prepare", str(manifest), "--out", str(tmp_path / "out")]) == 0
    frame, _ = read_manifest(tmp_path / "out")
    assert len(frame) == 5984
    counts = json.loads((tmp_path / "out" / "counts.json").read_text())
    assert counts["balance"]["after"]["nv"] == counts["splits"]["train"]["nv"]  # the largest class sets the target
    assert len({counts["balance"]["after"][c] for c in CLASSES}) == 1
