"""Ingest: read a collection from its source, validate it, and write the manifest and a validation report.

Output folder:
  manifest.csv / manifest.json   the rows that passed (see :mod:`skinattn.data.schema`); not written
                                 when the run fails
  ingest_report.json             every problem (file or line, reason), exclusions, counts, timings
  ingest_report.txt              the same, for people

``on_error="fail"`` writes no manifest if any problem is found; ``"quarantine"`` writes the rows without
problems and lists the others in the report. Nothing is dropped without being listed.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from pathlib import Path
from typing import Any

from skinattn.data.readers import READERS
from skinattn.data.readers.base import WHERE, Collection, Problem
from skinattn.data.schema import ManifestInfo, write_manifest
from skinattn.data.images import DEFAULT_MAX_PIXELS
from skinattn.storage import DEFAULT_MAX_ARCHIVE_BYTES, S3_SCHEME, list_source
from skinattn.data.validate import ValidationResult, validate_collection
from skinattn.errors import DataError
from skinattn.fileio import atomic_open, write_json

ON_ERROR_CHOICES: tuple[str, ...] = ("fail", "quarantine")
REPORT_JSON = "ingest_report.json"
REPORT_TEXT = "ingest_report.txt"


@dataclasses.dataclass
class IngestResult:
    """What one ingest run did: its status (clean / quarantined / failed), the report, the files written."""

    status: str
    report: dict[str, Any]
    problems: list[Problem]
    report_path: Path
    manifest_path: Path | None

    @property
    def ok(self) -> bool:
        return self.status != "failed"


def normalise_source(source: str) -> str:
    """An absolute local path, or the S3 URI unchanged, so that manifests hold usable locations."""
    return source if source.startswith(S3_SCHEME) else str(Path(source).expanduser().resolve())


def ingest(
    source: str,
    format: str,  # noqa: A002 - mirrors the --format option
    out_dir: str | Path,
    *,
    on_error: str = "fail",
    metadata: str | None = None,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    max_archive_bytes: int = DEFAULT_MAX_ARCHIVE_BYTES,
    workers: int | None = None,
    progress: bool = True,
    **format_options: Any,
) -> IngestResult:
    """Read, validate and write; see the module docstring. Raises DataError only for whole-source problems
    (unreadable source, unsafe archive, no ground-truth table, missing columns)."""
    if format not in READERS:
        raise DataError(f"unknown format {format!r}; choose from {sorted(READERS)}")
    if on_error not in ON_ERROR_CHOICES:
        raise DataError(f"unknown on_error {on_error!r}; choose from {list(ON_ERROR_CHOICES)}")
    source = normalise_source(source)
    entries = list_source(source, max_archive_bytes)
    collection = READERS[format](source, entries, metadata=metadata, **format_options)
    result = validate_collection(collection, max_pixels=max_pixels, workers=workers, progress=progress)

    out = Path(out_dir)
    kept = result.clean_rows()
    if not result.problems:
        status = "clean"
    elif on_error == "quarantine" and len(kept):
        status = "quarantined"
    else:
        status = "failed"

    manifest_path = None
    if status != "failed":
        info = ManifestInfo(
            classes=list(collection.classes),
            format=collection.format,
            source=source,
            extra={"metadata_file": collection.metadata_file, "report": REPORT_JSON, **collection.options},
        )
        manifest_path = write_manifest(kept.drop(columns=[WHERE]), info, out)

    report = build_report(collection, result, kept, status, on_error, max_pixels, manifest_path)
    report_path = out / REPORT_JSON
    write_json(report_path, report)
    with atomic_open(out / REPORT_TEXT) as handle:
        handle.write(summarise(report))
    return IngestResult(status, report, result.problems, report_path, manifest_path)


def build_report(
    collection: Collection,
    result: ValidationResult,
    kept: Any,
    status: str,
    on_error: str,
    max_pixels: int,
    manifest_path: Path | None,
) -> dict[str, Any]:
    """The validation report as a JSON-ready dict."""
    labels = [label for label in kept["label"] if label] if status != "failed" else []
    exclusion_reasons = Counter(exclusion.reason for exclusion in collection.excluded)
    return {
        "status": status,
        "format": collection.format,
        "source": collection.source,
        "metadata_file": collection.metadata_file,
        "options": collection.options,
        "on_error": on_error,
        "classes": list(collection.classes),
        "rows_read": int(len(collection.rows) + len(collection.excluded)),
        "rows_excluded": len(collection.excluded),
        "rows_quarantined": len(result.bad_rows),
        "rows_written": int(len(kept)) if status != "failed" else 0,
        "unlabelled_rows_written": int(sum(1 for label in kept["label"] if not label)) if status != "failed" else 0,
        "images_found": len(collection.images),
        "images_decoded": result.images_checked,
        "decode_seconds": round(result.decode_seconds, 3),
        "max_pixels": max_pixels,
        "class_counts": {code: labels.count(code) for code in collection.classes},
        "problem_counts": dict(Counter(problem.kind for problem in result.problems)),
        "problems": [problem.to_dict() for problem in result.problems],
        "excluded_by_reason": dict(exclusion_reasons.most_common()),
        "excluded": [dataclasses.asdict(exclusion) for exclusion in collection.excluded],
        "manifest": str(manifest_path) if manifest_path else None,
    }


def summarise(report: dict[str, Any], max_lines: int = 50) -> str:
    """A human-readable summary of a report (the first ``max_lines`` problems; the JSON has them all)."""
    lines = [
        f"ingest {report['status'].upper()}: {report['format']} from {report['source']}",
        f"  metadata: {report['metadata_file']}",
        f"  rows read {report['rows_read']}, written {report['rows_written']}, quarantined "
        f"{report['rows_quarantined']}, excluded {report['rows_excluded']}; images found "
        f"{report['images_found']}, decoded {report['images_decoded']} in {report['decode_seconds']:.1f} s",
        "  classes: " + ", ".join(f"{code} {count}" for code, count in report["class_counts"].items()),
    ]
    if report["unlabelled_rows_written"]:
        lines.append(f"  unlabelled rows written: {report['unlabelled_rows_written']}")
    for reason, count in report["excluded_by_reason"].items():
        lines.append(f"  excluded {count}: {reason}")
    if report["problems"]:
        counts = ", ".join(f"{kind} {count}" for kind, count in report["problem_counts"].items())
        lines.append(f"  problems ({len(report['problems'])}): {counts}")
        lines += [f"    {p['where']}: {p['reason']}" for p in report["problems"][:max_lines]]
        if len(report["problems"]) > max_lines:
            lines.append(f"    ... {len(report['problems']) - max_lines} more in {REPORT_JSON}")
    if report["manifest"]:
        lines.append(f"  manifest: {report['manifest']}")
    return "\n".join(lines) + "\n"
