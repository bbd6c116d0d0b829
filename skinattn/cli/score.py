"""``skinattn score``: score every image of a folder, .zip or s3:// prefix with a model, resumably."""

from __future__ import annotations

import argparse
import json
import os

from skinattn.cli.argtypes import add_threads_argument, apply_threads_argument


def register(subparsers: argparse._SubParsersAction) -> None:
    score = subparsers.add_parser(
        "score",
        help="batch-score a folder, .zip or s3:// prefix of images (isic image download layout or plain images)",
        description=(
            "Score every image of SOURCE and write, per image, one probability column per class, the top class "
            "and the model version to --out (.csv or .parquet); beside it <stem>_isic.csv (ISIC challenge "
            "layout), <stem>_errors.csv (file, image_id, reason for every refused or undecodable file), "
            "<stem>_summary.json, <stem>_drift.json and <stem>_drift.png (predicted classes and confidence "
            "against the model's validation reference, with a plain-language flag) and, when SOURCE's "
            "metadata.csv carries diagnoses, <stem>_eval/ (metrics, tables, figures, report.html). Progress is committed in chunks under <out>.parts/: after a kill, "
            "the same command continues where it stopped and every image appears exactly once."
        ),
    )
    score.add_argument("source", metavar="SOURCE", help="folder, .zip file or s3://bucket/prefix")
    score.add_argument("--out", required=True, help="predictions file, ending in .csv or .parquet")
    score.add_argument(
        "--model",
        default="production",
        help="model folder (model.json + model.safetensors), or a registry version: v3, latest, production "
        "(default production)",
    )
    score.add_argument("--registry", help="registry root for --model versions (default: $SKINATTN_REGISTRY, else ./registry)")
    score.add_argument("--batch-size", type=int, default=32, help="images per forward pass (default 32)")
    score.add_argument(
        "--workers", type=int, default=min(4, os.cpu_count() or 1),
        help="DataLoader worker processes decoding images in parallel (default min(4, CPUs); 0 = in the main process)",
    )  # fmt: skip
    score.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto (default: cuda when visible)")
    score.add_argument(
        "--shard", metavar="i/N", help="score only shard i of N (0 <= i < N; contiguous slices of the sorted listing)"
    )
    score.add_argument(
        "--chunk-size", type=int, default=512, help="images per committed chunk: the most a kill can lose (default 512)"
    )
    score.add_argument("--restart", action="store_true", help="discard the progress of an earlier run into --out")
    score.add_argument(
        "--bootstrap", type=int, default=1000,
        help="bootstrap resamples for the evaluation's confidence intervals (default 1000; 0 = off)",
    )  # fmt: skip
    score.add_argument("--quiet", action="store_true", help="no progress bars")
    add_threads_argument(score)
    score.set_defaults(handler=_score)


def _score(args: argparse.Namespace) -> int:
    from skinattn.errors import DataError
    from skinattn.scoring import ScoreSettings, score_source
    from skinattn.scoring.model_source import describe_model

    if args.chunk_size < 1 or args.batch_size < 1 or args.workers < 0:
        raise DataError("--chunk-size and --batch-size must be at least 1, --workers at least 0")
    apply_threads_argument(args)
    settings = ScoreSettings(
        batch_size=args.batch_size,
        workers=args.workers,
        device=args.device,
        chunk_size=args.chunk_size,
        restart=args.restart,
        n_bootstrap=args.bootstrap,
        progress=not args.quiet,
    )
    result = score_source(args.source, args.out, args.model, settings, shard=args.shard, registry_root=args.registry)
    print(f"scored {result.scored} image(s) with model {result.model_version} -> {result.predictions}")
    summary = json.loads(result.summary.read_text(encoding="utf-8"))
    described = describe_model(summary)
    if described:
        print(f"model: {described}")
    print(f"ISIC layout -> {result.isic}")
    print(f"{result.failed} file(s) refused or unreadable -> {result.errors}")
    print(f"drift: {summary['drift']['message']} -> {result.drift}")
    if result.evaluation is not None:
        print(f"evaluation of the labelled images -> {result.evaluation}")
    return 0
