"""Validation of a collection before anything trains on it.

Checks, each reported as a :class:`Problem` naming the file or the metadata line and the reason:

- every row has a non-empty, unique image id and a known label (or none, where labels are optional);
- every row has exactly one image file, and every image file has a row;
- every image fully decodes, converts to RGB and stays under the pixel-count guard.

Decoding runs in a thread pool: Pillow releases the GIL while it decodes, so threads scale on the
cores there are without the cost of processes.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor

import pandas as pd
from tqdm import tqdm

from skinattn.data.readers.base import WHERE, Collection, Problem
from skinattn.data.images import DEFAULT_MAX_PIXELS, decode_image
from skinattn.storage import Entry, read_bytes
from skinattn.errors import DataError


def default_workers() -> int:
    """Decode threads: a few per core, since part of each task is waiting on disk or network."""
    return min(16, 2 * (os.cpu_count() or 1))


@dataclasses.dataclass
class ValidationResult:
    """The rows (with ``image_path`` filled where an image was found), every problem, and timings."""

    rows: pd.DataFrame
    problems: list[Problem]
    images_checked: int
    decode_seconds: float

    @property
    def bad_rows(self) -> set[int]:
        return {problem.row for problem in self.problems if problem.row is not None}

    def clean_rows(self) -> pd.DataFrame:
        """The rows without any problem (what quarantine keeps)."""
        return self.rows.drop(index=sorted(self.bad_rows)).reset_index(drop=True)


def _check_rows(collection: Collection) -> list[Problem]:
    rows = collection.rows
    problems: list[Problem] = []
    already_bad = {p.row for p in collection.problems}
    classes = set(collection.classes)

    lines_by_id: dict[str, list[str]] = defaultdict(list)
    for image_id, where in zip(rows["image_id"], rows[WHERE], strict=True):
        lines_by_id[image_id].append(where)

    for index, (image_id, label, where) in enumerate(zip(rows["image_id"], rows["label"], rows[WHERE], strict=True)):
        if not image_id:
            problems.append(Problem("bad_row", where, "empty image id", image_id, index))
            continue
        first = lines_by_id[image_id][0]
        if where != first:  # the first row of an id is kept; only the repeats are problems (quarantined)
            problems.append(Problem("duplicate_id", where,
                                    f"duplicate image id {image_id}: first listed on line {first.rsplit(':', 1)[-1]}, "
                                    "which is the row kept", image_id, index))  # fmt: skip
        if index in already_bad:
            continue  # the reader already said what is wrong with this row's label
        if not label and collection.labels_required:
            problems.append(Problem("unknown_label", where, f"{image_id}: missing label", image_id, index))
        elif label and label not in classes:
            problems.append(Problem("unknown_label", where,
                                    f"{image_id}: unknown label {label!r}; known classes {collection.classes}",
                                    image_id, index))
    return problems


def _match_images(collection: Collection) -> tuple[list[str], list[Problem]]:
    """image_path for every row ("" when none) and the problems of matching rows to image files."""
    by_id: dict[str, list[Entry]] = defaultdict(list)
    for entry in collection.images:
        by_id[entry.stem].append(entry)

    paths: list[str] = []
    problems: list[Problem] = []
    rows = collection.rows
    for index, (image_id, where) in enumerate(zip(rows["image_id"], rows[WHERE], strict=True)):
        found = by_id.get(image_id, [])
        if len(found) == 1 and found[0].refused:
            paths.append("")
            problems.append(Problem("bad_image", where, found[0].refused, image_id, index))
            continue
        if len(found) == 1:
            paths.append(found[0].location)
            continue
        paths.append("")
        if not image_id:
            continue
        if not found:
            reason = f"no image file for {image_id} (expected {image_id}.jpg or .png in {collection.source})"
            problems.append(Problem("missing_image", where, reason, image_id, index))
        else:
            names = [entry.relpath for entry in found]
            problems.append(Problem("ambiguous_image", where, f"{image_id} matches {len(found)} files {names}",
                                    image_id, index))

    named = set(rows["image_id"]) | {exclusion.image_id for exclusion in collection.excluded}
    for entry in collection.images:
        if entry.stem not in named:
            problems.append(Problem("orphan_image", entry.location,
                                    f"image has no row in {collection.metadata_file}", entry.stem))
    return paths, problems


def _decode_problem(location: str, max_pixels: int) -> str | None:
    """None when the image decodes within the guard, else the reason it does not."""
    try:
        decode_image(read_bytes(location), location, max_pixels).close()
    except DataError as exc:
        return str(exc).removeprefix(f"{location}: ")
    return None


def validate_collection(
    collection: Collection,
    *,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    workers: int | None = None,
    progress: bool = True,
) -> ValidationResult:
    """Run every check on ``collection``; never raises for a data problem, returns them all instead."""
    problems = list(collection.problems) + _check_rows(collection)
    paths, match_problems = _match_images(collection)
    problems += match_problems
    rows = collection.rows.copy()
    rows.insert(1, "image_path", paths)

    to_decode = [(index, path) for index, path in enumerate(paths) if path]
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=workers or default_workers()) as pool:
        reasons = pool.map(lambda item: _decode_problem(item[1], max_pixels), to_decode)
        checked = tqdm(zip(to_decode, reasons, strict=True), total=len(to_decode), desc="decode images",
                       unit="img", disable=not progress, mininterval=0.5)
        for (index, path), reason in checked:
            if reason is not None:
                problems.append(Problem("bad_image", path, reason, rows.at[index, "image_id"], index))
    seconds = time.perf_counter() - started
    return ValidationResult(rows=rows, problems=problems, images_checked=len(to_decode), decode_seconds=seconds)
