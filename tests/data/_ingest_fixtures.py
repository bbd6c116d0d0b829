"""Builders of tiny collections in each layout the readers accept, and of broken inputs.

Every image is a real 32×32 JPEG with its own colour, so decoding really runs; nothing is mocked.
"""

from __future__ import annotations

import csv
import io
import struct
import zipfile
from collections.abc import Iterable
from pathlib import Path

from PIL import Image

from skinattn.constants import HAM10000_CLASSES


def jpeg_bytes(seed: int = 0, size: int = 32, mode: str = "RGB") -> bytes:
    colour = ((seed * 37) % 256, (seed * 91) % 256, (seed * 53) % 256)
    image = Image.new("RGB", (size, size), colour)
    buffer = io.BytesIO()
    image.convert(mode).save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def write_image(path: Path, seed: int = 0, size: int = 32) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(jpeg_bytes(seed, size))
    return path


def with_declared_size(jpeg: bytes, width: int, height: int) -> bytes:
    """The same JPEG with its SOF header claiming other dimensions (a decompression-bomb header)."""
    data = bytearray(jpeg)
    position = 2
    while position < len(data):
        marker, length = data[position + 1], struct.unpack(">H", data[position + 2:position + 4])[0]
        if marker in (0xC0, 0xC1, 0xC2):  # start of frame: precision, height, width
            struct.pack_into(">HH", data, position + 5, height, width)
            return bytes(data)
        position += 2 + length
    raise ValueError("no SOF marker found")


def ham_rows(per_class: int = 2) -> list[dict[str, str]]:
    """HAM10000 metadata rows; the first two images of each class share one lesion."""
    rows = []
    for class_index, dx in enumerate(HAM10000_CLASSES):
        for k in range(per_class):
            number = 24306 + class_index * 100 + k
            rows.append({
                "lesion_id": f"HAM_{class_index:04d}{min(k, 1):03d}",
                "image_id": f"ISIC_{number:07d}",
                "dx": dx,
                "dx_type": "histo",
                "age": "" if k else "45.0",
                "sex": "male",
                "localization": "back",
            })
    return rows


def write_table(path: Path, rows: list[dict[str, str]], separator: str = ",",
                columns: Iterable[str] | None = None) -> Path:
    columns = list(columns or rows[0].keys())
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, delimiter=separator, lineterminator="\n")
        writer.writerow(columns)
        writer.writerows([row.get(c, "") for c in columns] for row in rows)
    return path


def make_ham10000(root: Path, per_class: int = 2, separator: str = ",", metadata_name: str = "HAM10000_metadata.csv",
                  image_folders: tuple[str, ...] = ("images",)) -> list[dict[str, str]]:
    """HAM10000 layout under ``root``: metadata table + JPEGs spread over ``image_folders``."""
    rows = ham_rows(per_class)
    write_table(root / metadata_name, rows, separator)
    for index, row in enumerate(rows):
        folder = image_folders[index % len(image_folders)]
        write_image(root / folder / f"{row['image_id']}.jpg", seed=index)
    return rows


def make_ham10000_zipped(root: Path, per_class: int = 2) -> list[dict[str, str]]:
    """The Dataverse download: metadata without extension, tab-separated, images in two part zips."""
    rows = ham_rows(per_class)
    write_table(root / "HAM10000_metadata", rows, "\t")
    half = len(rows) // 2
    for part, chunk in ((1, rows[:half]), (2, rows[half:])):
        with zipfile.ZipFile(root / f"HAM10000_images_part_{part}.zip", "w") as archive:
            for index, row in enumerate(chunk):
                archive.writestr(f"{row['image_id']}.jpg", jpeg_bytes(index + part * 100))
    return rows


def make_isic2017(root: Path) -> dict[str, str]:
    """ISIC 2017 Part 3: 2 melanoma, 2 seborrheic keratosis, 3 nevi, with superpixel files to ignore."""
    truth = {"ISIC_0000000": "nv", "ISIC_0000001": "nv", "ISIC_0000002": "mel", "ISIC_0000003": "nv",
             "ISIC_0000004": "mel", "ISIC_0000005": "sk", "ISIC_0000006": "sk"}
    rows = [{"image_id": image_id, "melanoma": "1.0" if label == "mel" else "0.0",
             "seborrheic_keratosis": "1.0" if label == "sk" else "0.0"} for image_id, label in truth.items()]
    write_table(root / "ISIC-2017_Training_Part3_GroundTruth.csv", rows)
    for index, image_id in enumerate(truth):
        write_image(root / "ISIC-2017_Training_Data" / f"{image_id}.jpg", seed=index)
        superpixels = root / "ISIC-2017_Training_Data" / f"{image_id}_superpixels.png"
        Image.new("RGB", (32, 32)).save(superpixels)
    return truth


def make_isic2018(root: Path, groupings: bool = False) -> dict[str, str]:
    """ISIC 2018 Task 3 one-hot ground truth (and optionally the lesion groupings file)."""
    truth = {f"ISIC_{24306 + i:07d}": code for i, code in enumerate(HAM10000_CLASSES)}
    columns = ["image"] + [code.upper() for code in HAM10000_CLASSES]
    rows = [{"image": image_id, **{c.upper(): "1.0" if c == label else "0.0" for c in HAM10000_CLASSES}}
            for image_id, label in truth.items()]
    write_table(root / "ISIC2018_Task3_Training_GroundTruth" / "ISIC2018_Task3_Training_GroundTruth.csv",
                rows, columns=columns)
    (root / "ISIC2018_Task3_Training_GroundTruth" / "ATTRIBUTION.txt").write_text("HAM10000\n")
    if groupings:
        lesions = [{"image": image_id, "lesion_id": f"HAM_{i // 2:07d}", "diagnosis_confirm_type": "histopathology"}
                   for i, image_id in enumerate(truth)]
        write_table(root / "ISIC2018_Task3_Training_LesionGroupings.csv", lesions)
    for index, image_id in enumerate(truth):
        write_image(root / "ISIC2018_Task3_Training_Input" / f"{image_id}.jpg", seed=index)
    return truth


def make_isic2018_dataverse_test(root: Path) -> list[dict[str, str]]:
    """The Dataverse ISIC 2018 test ground truth: HAM10000 columns plus dataset, HAMTEST lesion ids."""
    rows = [{"lesion_id": f"HAMTEST_{i:07d}", "image_id": f"ISIC_{34524 + i:07d}", "dx": code,
             "dx_type": "histo", "age": "50.0", "sex": "female", "localization": "back", "dataset": "vidir_modern"}
            for i, code in enumerate(HAM10000_CLASSES)]
    write_table(root / "ISIC2018_Task3_Test_GroundTruth.csv", rows)
    for index, row in enumerate(rows):
        write_image(root / "ISIC2018_Task3_Test_Input" / f"{row['image_id']}.jpg", seed=index)
    return rows


# New-schema rows: (diagnosis_1..5 values, expected class or "" when unmapped).
ISIC_ARCHIVE_NEW = [
    (("Malignant", "Malignant melanocytic proliferations (Melanoma)", "Melanoma Invasive",
      "Melanoma Invasive, Superficial spreading", ""), "mel"),
    (("Benign", "Benign melanocytic proliferations", "Nevus", "Blue nevus", ""), "nv"),
    (("Malignant", "Malignant adnexal epithelial proliferations - Follicular", "Basal cell carcinoma", "", ""), "bcc"),
    (("Benign", "Benign epidermal proliferations", "Seborrheic keratosis", "", ""), "bkl"),
    (("Benign", "Benign soft tissue proliferations - Vascular", "Hemangioma", "Cherry hemangioma", ""), "vasc"),
    (("Indeterminate", "Indeterminate epidermal proliferations", "Solar or actinic keratosis", "", ""), "akiec"),
    (("Malignant", "Malignant epidermal proliferations", "Squamous cell carcinoma, Invasive", "", ""), ""),
    (("Benign", "", "", "", ""), ""),
]


def make_isic_archive_new(root: Path, unlabelled: int = 1) -> list[dict[str, str]]:
    """``isic image download`` output with the new diagnosis_1..5 schema, plus unlabelled rows."""
    rows = []
    for index, (terms, _) in enumerate(ISIC_ARCHIVE_NEW):
        rows.append({"isic_id": f"ISIC_{9000000 + index:07d}", "attribution": "Test", "copyright_license": "CC-0",
                     "anatom_site_1": "Torso", **{f"diagnosis_{k + 1}": t for k, t in enumerate(terms)},
                     "lesion_id": f"IL_{index // 2:07d}"})
    for _ in range(unlabelled):
        index = len(rows)
        rows.append({"isic_id": f"ISIC_{9000000 + index:07d}", "attribution": "Test", "copyright_license": "CC-0",
                     "anatom_site_1": "", "lesion_id": ""})
    write_table(root / "metadata.csv", rows, columns=list(rows[0].keys()))
    (root / "attribution.txt").write_text("Test images\n")
    (root / "licenses").mkdir(parents=True, exist_ok=True)
    (root / "licenses" / "CC-0.txt").write_text("public domain\n")
    for index, row in enumerate(rows):
        write_image(root / f"{row['isic_id']}.jpg", seed=index)
    return rows


def make_isic_archive_old(root: Path) -> list[dict[str, str]]:
    """An older export: benign_malignant + diagnosis + anatom_site_general."""
    table = [("malignant", "melanoma", "mel"), ("benign", "nevus", "nv"), ("benign", "dermatofibroma", "df"),
             ("benign", "lichen planus-like keratosis", "bkl"), ("benign", "solar lentigo", "bkl"),
             ("malignant", "basal cell carcinoma", "bcc"), ("benign", "vascular lesion", "vasc"),
             ("malignant", "actinic keratosis", "akiec"), ("benign", "", ""),
             ("benign", "atypical melanocytic proliferation", "")]
    rows = [{"isic_id": f"ISIC_{8000000 + i:07d}", "attribution": "Test", "copyright_license": "CC-BY",
             "anatom_site_general": "lower extremity", "benign_malignant": bm, "diagnosis": dx, "expected": expected}
            for i, (bm, dx, expected) in enumerate(table)]
    write_table(root / "metadata.csv", rows, columns=[c for c in rows[0] if c != "expected"])
    for index, row in enumerate(rows):
        write_image(root / f"{row['isic_id']}.jpg", seed=index)
    return rows


def zip_folder(folder: Path, archive: Path, extra: dict[str, bytes] | None = None) -> Path:
    """Zip every file under ``folder`` (paths relative to it), plus ``extra`` raw entries."""
    with zipfile.ZipFile(archive, "w") as handle:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                handle.write(path, path.relative_to(folder).as_posix())
        for name, data in (extra or {}).items():
            handle.writestr(name, data)
    return archive
