"""CLI: ``skinattn prepare`` (split + balance + cache) and ``skinattn sample-data`` (synthetic HAM10000)."""

from __future__ import annotations

import argparse
import json
import time

from skinattn.cli.argtypes import positive_int


def _balance_target(value: str) -> int | str:
    if value in ("max", "median"):
        return value
    try:
        return int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected 'max', 'median' or a whole number, got {value!r}") from None


def register(subparsers: argparse._SubParsersAction) -> None:
    prepare = subparsers.add_parser(
        "prepare",
        help="split a manifest by lesion, balance the training split, optionally cache resized images",
        description=(
            "Assign each image of MANIFEST to train/val/test without putting one lesion in two splits, "
            "write a balanced training index (per-image repeat counts, augmented online during training), "
            "print per-class counts, and optionally cache every image resized to the training resolution. "
            "Writes DIR/manifest.csv (+ manifest.json) with a 'split' column, DIR/train_balanced.csv, "
            "DIR/counts.json, DIR/counts.md and, with --cache-size, DIR/cache/."
        ),
    )
    prepare.add_argument("manifest", metavar="MANIFEST", help="manifest folder or manifest.csv (from 'skinattn ingest')")
    prepare.add_argument("--out", required=True, metavar="DIR", help="output folder (not the input manifest's folder)")
    prepare.add_argument(
        "--protocol",
        choices=("grouped", "paper"),
        default="grouped",
        help=(
            "grouped: stratified by label, grouped by lesion_id (default). paper: the authors' split, test "
            "drawn only from single-image lesions, plus a validation set drawn the same way"
        ),
    )
    prepare.add_argument(
        "--val-fraction",
        type=float,
        default=0.15,
        help="validation share: of all images (grouped) or of single-image lesions' images (paper); default 0.15",
    )
    prepare.add_argument(
        "--test-fraction",
        type=float,
        default=0.15,
        help="test share: of all images (grouped) or of single-image lesions' images (paper); default 0.15",
    )
    prepare.add_argument("--seed", type=int, default=0, help="seed for the split and the balancing (default 0)")
    prepare.add_argument(
        "--balance-target",
        type=_balance_target,
        default="max",
        metavar="{max,median,N}",
        help=(
            "training images per class after balancing: the largest class (max, default: the paper's "
            "oversampling), the median class, or N (the authors used about 8000 with --no-undersample)"
        ),
    )
    prepare.add_argument(
        "--no-undersample",
        dest="undersample",
        action="store_false",
        help="keep classes larger than the target whole instead of undersampling them to it",
    )
    prepare.add_argument(
        "--cache-size",
        type=int,
        default=None,
        metavar="PX",
        help="also cache every image resized to PX x PX (one uint8 array per split under DIR/cache)",
    )
    prepare.add_argument("--workers", type=positive_int, default=2, help="threads that decode images for the cache (default 2)")
    prepare.set_defaults(handler=_run_prepare)

    sample = subparsers.add_parser(
        "sample-data",
        help="write a synthetic data set in the HAM10000 layout (metadata CSV + JPEGs)",
        description=(
            "Write OUT/HAM10000_metadata.csv and one ISIC_XXXXXXX.jpg per image: seven classes with distinct "
            "lesion shapes, colours and textures that a small CNN learns in a few CPU epochs; some lesions "
            "have several images. The same arguments give byte-identical files."
        ),
    )
    sample.add_argument("out", metavar="OUT", help="output folder (created; must be empty unless --overwrite)")
    sample.add_argument("--per-class", type=int, default=20, help="images per class (default 20)")
    sample.add_argument("--size", type=int, default=64, help="image side in pixels (default 64)")
    sample.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    sample.add_argument("--overwrite", action="store_true", help="write into OUT even if it is not empty")
    sample.set_defaults(handler=_run_sample_data)


def _run_prepare(args: argparse.Namespace) -> int:
    from skinattn.data.balance import BalanceSpec
    from skinattn.data.prepare import prepare
    from skinattn.data.splits import SplitSpec

    split_spec = SplitSpec(args.protocol, args.val_fraction, args.test_fraction, args.seed)
    balance_spec = BalanceSpec(args.balance_target, args.undersample, args.seed)
    result = prepare(
        args.manifest, args.out, split_spec, balance_spec, cache_size=args.cache_size, workers=args.workers
    )
    balance = result.counts["balance"]
    print(f"split ({args.protocol}, seed {args.seed}) and balance (target {balance['resolved_target']} per class):")
    print(result.table, end="")
    print(f"wrote {result.manifest_csv}, {result.balanced_index_csv} and {result.out_dir / 'counts.json'}")
    for split, path in result.cache_dirs.items():
        print(f"cache {split}: {path}")
    return 0


def _run_sample_data(args: argparse.Namespace) -> int:
    from skinattn.constants import HAM10000_CLASSES
    from skinattn.data.synthetic import make_sample_dataset

    start = time.perf_counter()
    metadata = make_sample_dataset(args.out, args.per_class, args.size, args.seed, overwrite=args.overwrite)
    print(
        json.dumps(
            {
                "metadata": str(metadata),
                "images": len(HAM10000_CLASSES) * args.per_class,
                "size": args.size,
                "seed": args.seed,
                "seconds": round(time.perf_counter() - start, 3),
            }
        )
    )
    return 0
