"""A synthetic data set in the exact HAM10000 layout, for demos and fast tests.

``make_sample_dataset(out, per_class=20, size=64, seed=0)`` writes ``HAM10000_metadata.csv`` (lesion_id,
image_id, dx, dx_type, age, sex, localization) and one ``ISIC_XXXXXXX.jpg`` per row. Each of the seven
classes draws a lesion with its own shape, colour and texture on a skin-coloured background; position,
scale, rotation, colour and noise are random, so a small CNN has something to learn but the task is not
trivial. About a third of the lesions have two or three images (same lesion, a different "photo"), so a
split that ignores lesion_id would leak.

The output depends only on the arguments: the same seed gives byte-identical files.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from skinattn.constants import HAM10000_CLASSES
from skinattn.errors import DataError
from skinattn.fileio import atomic_open, atomic_path

METADATA_FILE = "HAM10000_metadata.csv"
METADATA_COLUMNS: tuple[str, ...] = ("lesion_id", "image_id", "dx", "dx_type", "age", "sex", "localization")
# Real ISIC ids stop well below this, so synthetic ids never collide with real images.
FIRST_IMAGE_NUMBER = 9_000_000
FIRST_LESION_NUMBER = 9_000_000
# Probability that a lesion has 1, 2 or 3 images.
IMAGES_PER_LESION_P = {1: 0.65, 2: 0.25, 3: 0.10}
JPEG_QUALITY = 92

_DX_TYPES = ("histo", "follow_up", "consensus", "confocal")
_SEXES = ("male", "female", "unknown")
_SITES = ("back", "lower extremity", "trunk", "upper extremity", "abdomen", "face", "chest", "scalp")

Mask = Callable[[np.ndarray, np.ndarray, np.ndarray, np.ndarray], np.ndarray]


def _disk(u: np.ndarray, v: np.ndarray, r: np.ndarray, theta: np.ndarray) -> np.ndarray:
    return r < 1.0


def _ring(u: np.ndarray, v: np.ndarray, r: np.ndarray, theta: np.ndarray) -> np.ndarray:
    return (r < 1.0) & (r > 0.55)


def _square(u: np.ndarray, v: np.ndarray, r: np.ndarray, theta: np.ndarray) -> np.ndarray:
    return (np.abs(u) < 0.85) & (np.abs(v) < 0.85)


def _ellipse(u: np.ndarray, v: np.ndarray, r: np.ndarray, theta: np.ndarray) -> np.ndarray:
    return (u / 1.15) ** 2 + (v / 0.5) ** 2 < 1.0


def _three_lobes(u: np.ndarray, v: np.ndarray, r: np.ndarray, theta: np.ndarray) -> np.ndarray:
    return r < 0.8 * (1.0 + 0.3 * np.cos(3.0 * theta))


def _five_point_star(u: np.ndarray, v: np.ndarray, r: np.ndarray, theta: np.ndarray) -> np.ndarray:
    return r < 0.75 * (1.0 + 0.4 * np.cos(5.0 * theta))


def _cluster(u: np.ndarray, v: np.ndarray, r: np.ndarray, theta: np.ndarray) -> np.ndarray:
    centres = ((-0.45, -0.3), (0.45, -0.3), (0.0, 0.45))
    return np.logical_or.reduce([(u - cu) ** 2 + (v - cv) ** 2 < 0.2 for cu, cv in centres])


@dataclasses.dataclass(frozen=True)
class ClassLook:
    """How one class is drawn: a shape, a mean RGB colour and a texture."""

    mask: Mask
    colour: tuple[int, int, int]
    texture: str  # "smooth", "stripes", "dots" or "speckle"


# One look per HAM10000 class; shape, colour and texture each separate some classes, none all of them.
CLASS_LOOKS: dict[str, ClassLook] = {
    "akiec": ClassLook(_three_lobes, (196, 92, 92), "speckle"),
    "bcc": ClassLook(_ring, (226, 176, 186), "stripes"),
    "bkl": ClassLook(_square, (172, 124, 78), "dots"),
    "df": ClassLook(_ellipse, (116, 74, 52), "stripes"),
    "mel": ClassLook(_five_point_star, (58, 40, 48), "speckle"),
    "nv": ClassLook(_disk, (140, 92, 62), "smooth"),
    "vasc": ClassLook(_cluster, (150, 32, 72), "dots"),
}


@dataclasses.dataclass(frozen=True)
class _LesionParams:
    """What all images of one lesion share."""

    colour: np.ndarray
    skin: np.ndarray
    scale: float
    rotation: float


def _texture(name: str, u: np.ndarray, v: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A multiplicative brightness pattern in [~0.6, ~1.2] over the lesion's own coordinates."""
    if name == "stripes":
        return 0.9 + 0.25 * np.sin(7.0 * u + rng.uniform(0, 2 * np.pi))
    if name == "dots":
        return np.where(np.sin(6.0 * u) * np.sin(6.0 * v) > 0.5, 0.65, 1.0)
    if name == "speckle":
        return rng.uniform(0.7, 1.15, size=u.shape)
    return np.ones_like(u)


def _render(look: ClassLook, lesion: _LesionParams, size: int, rng: np.random.Generator) -> np.ndarray:
    """Draw one image of ``lesion`` as an HxWx3 uint8 array; position and noise vary per image."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64) / size
    # Background: skin tone with a soft illumination gradient, like a dermatoscope's vignetting.
    gradient = 1.0 - 0.15 * ((xx - 0.5) ** 2 + (yy - 0.5) ** 2)
    image = lesion.skin[None, None, :] * gradient[..., None]

    centre = rng.uniform(0.32, 0.68, size=2)
    angle = lesion.rotation + rng.normal(0.0, 0.2)
    scale = lesion.scale * rng.uniform(0.9, 1.1)
    dx, dy = xx - centre[0], yy - centre[1]
    # Lesion coordinates: rotated and scaled so the shape functions work on a unit disk.
    u = (np.cos(angle) * dx + np.sin(angle) * dy) / scale
    v = (-np.sin(angle) * dx + np.cos(angle) * dy) / scale
    r = np.hypot(u, v)
    theta = np.arctan2(v, u)
    inside = look.mask(u, v, r, theta)
    lesion_pixels = lesion.colour[None, None, :] * _texture(look.texture, u, v, rng)[..., None]
    image = np.where(inside[..., None], lesion_pixels, image)

    image += rng.normal(0.0, 7.0, size=image.shape)
    return np.clip(image, 0, 255).astype(np.uint8)


def _lesion_sizes(per_class: int, rng: np.random.Generator) -> list[int]:
    """Split ``per_class`` images into lesions of 1-3 images."""
    choices = np.array(list(IMAGES_PER_LESION_P))
    weights = np.array(list(IMAGES_PER_LESION_P.values()))
    sizes: list[int] = []
    remaining = per_class
    while remaining > 0:
        n = int(min(rng.choice(choices, p=weights), remaining))
        sizes.append(n)
        remaining -= n
    return sizes


def make_sample_dataset(
    out: str | Path, per_class: int = 20, size: int = 64, seed: int = 0, *, overwrite: bool = False
) -> Path:
    """Write a synthetic HAM10000-layout data set into ``out``; return the metadata CSV path."""
    if per_class < 1:
        raise DataError(f"--per-class must be at least 1, got {per_class}")
    if not 16 <= size <= 1024:
        raise DataError(f"--size must be between 16 and 1024 pixels, got {size}")
    out_dir = Path(out)
    if out_dir.exists() and any(out_dir.iterdir()) and not overwrite:
        raise DataError(f"{out_dir}: folder exists and is not empty (pass --overwrite to write into it)")
    out_dir.mkdir(parents=True, exist_ok=True)

    rng = np.random.default_rng(seed)
    rows: list[dict[str, str]] = []
    image_number, lesion_number = FIRST_IMAGE_NUMBER, FIRST_LESION_NUMBER
    for dx in HAM10000_CLASSES:
        look = CLASS_LOOKS[dx]
        for n_images in _lesion_sizes(per_class, rng):
            lesion = _LesionParams(
                colour=np.clip(np.array(look.colour) + rng.normal(0, 12, size=3), 0, 255),
                skin=np.array([224, 178, 150]) + rng.normal(0, 10, size=3),
                scale=float(rng.uniform(0.14, 0.26)),
                rotation=float(rng.uniform(0, 2 * np.pi)),
            )
            lesion_id = f"HAM_{lesion_number:07d}"
            lesion_number += 1
            # Metadata is per lesion in HAM10000 (one patient, one site).
            age = "" if rng.random() < 0.05 else f"{5 * int(rng.integers(1, 18))}.0"
            sex = str(rng.choice(_SEXES, p=[0.5, 0.48, 0.02]))
            site = str(rng.choice(_SITES))
            dx_type = str(rng.choice(_DX_TYPES))
            for _ in range(n_images):
                image_id = f"ISIC_{image_number:07d}"
                image_number += 1
                pixels = _render(look, lesion, size, rng)
                with atomic_path(out_dir / f"{image_id}.jpg") as tmp:
                    Image.fromarray(pixels, "RGB").save(tmp, format="JPEG", quality=JPEG_QUALITY)
                rows.append(
                    {
                        "lesion_id": lesion_id,
                        "image_id": image_id,
                        "dx": dx,
                        "dx_type": dx_type,
                        "age": age,
                        "sex": sex,
                        "localization": site,
                    }
                )
    metadata = out_dir / METADATA_FILE
    # Written last: a metadata file present means every image it names is complete.
    with atomic_open(metadata, newline="") as handle:
        pd.DataFrame(rows, columns=list(METADATA_COLUMNS)).to_csv(handle, index=False)
    return metadata
