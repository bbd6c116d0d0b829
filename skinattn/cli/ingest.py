"""``skinattn ingest``: read a collection, validate it, write the manifest and the validation report."""

from __future__ import annotations

import argparse
import sys

from skinattn.cli.argtypes import positive_int
from skinattn.errors import DataError

# Spelled out here so that building the parser imports no pandas; a test checks them against the readers.
FORMATS: tuple[str, ...] = ("ham10000", "isic2017", "isic2018", "isic-archive")
ISIC2017_TASKS: tuple[str, ...] = ("3class", "2class")
DEFAULT_MAX_PIXELS = 64_000_000  # == skinattn.data.images.DEFAULT_MAX_PIXELS (checked by a test)
DEFAULT_MAX_ARCHIVE_BYTES = 64 * 1024**3  # == skinattn.storage.DEFAULT_MAX_ARCHIVE_BYTES


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "ingest",
        help="read a dermoscopy collection, validate every image, write manifest + validation report",
        description=(
            "Read a collection (HAM10000, ISIC 2017 Part 3, ISIC 2018 Task 3, or an ISIC Archive download) "
            "from a folder, a .zip or s3://bucket/prefix (AWS_* environment variables, AWS_ENDPOINT_URL for "
            "MinIO), check that every image decodes and every row has an image and vice versa, and write "
            "OUT/manifest.csv, OUT/manifest.json, OUT/ingest_report.json and OUT/ingest_report.txt. "
            "Exits non-zero, printing one line per problem, when problems remain."
        ),
    )
    parser.add_argument("source", metavar="SOURCE", help="folder, .zip file or s3://bucket/prefix")
    parser.add_argument("--format", required=True, choices=FORMATS, help="layout of the collection")
    parser.add_argument("--out", required=True, metavar="DIR", help="output folder")
    parser.add_argument(
        "--on-error", choices=("fail", "quarantine"), default="fail",
        help="fail: write no manifest if any problem is found (default); quarantine: leave rows with "
             "problems out of the manifest, list them in the report, and exit 0",
    )
    parser.add_argument("--metadata", metavar="NAME",
                        help="the ground-truth table (relative path or file name) when it cannot be found by name")
    parser.add_argument("--task", choices=ISIC2017_TASKS, default="3class",
                        help="isic2017 only: 3class = mel/nv/sk, 2class = the paper's nv vs sk (default: 3class)")
    parser.add_argument("--keep-unmapped", action="store_true",
                        help="isic-archive only: keep rows whose diagnosis maps onto no HAM10000 class, unlabelled "
                             "(default: leave them out and count them in the report)")
    parser.add_argument("--max-pixels", type=positive_int, default=DEFAULT_MAX_PIXELS,
                        help=f"refuse images with more pixels than this (default {DEFAULT_MAX_PIXELS:,})")
    parser.add_argument("--max-archive-bytes", type=positive_int, default=DEFAULT_MAX_ARCHIVE_BYTES,
                        help=f"refuse zip archives that declare more uncompressed bytes (default "
                             f"{DEFAULT_MAX_ARCHIVE_BYTES:,})")
    parser.add_argument("--workers", type=positive_int, default=None, help="image decode threads (default: 2 per core)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from skinattn.data.ingest import ingest

    options: dict[str, object] = {}
    if args.format == "isic2017":
        options["task"] = args.task
    if args.format == "isic-archive":
        options["keep_unmapped"] = args.keep_unmapped
    result = ingest(
        args.source, args.format, args.out,
        on_error=args.on_error, metadata=args.metadata, max_pixels=args.max_pixels,
        max_archive_bytes=args.max_archive_bytes, workers=args.workers, progress=not args.no_progress,
        **options,
    )
    if result.ok:
        for problem in result.problems:  # quarantined: still say what was left out, on stderr
            print(f"quarantined: {problem.line()}", file=sys.stderr)
        report = result.report
        print(f"{result.status}: {report['rows_written']} rows -> {result.manifest_path}; report {result.report_path}")
        return 0
    for problem in result.problems:
        print(problem.line(), file=sys.stderr)
    raise DataError(f"{len(result.problems)} problem(s) in {args.source}; no manifest written; "
                    f"report: {result.report_path}")
