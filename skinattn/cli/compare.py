"""``skinattn compare``: does Soft Attention help beyond noise? The ablation pipeline's paired report, from
evaluation folders a user made by hand (``skinattn evaluate`` of SA and baseline models trained with the same
seeds on one split)."""

from __future__ import annotations

import argparse
from pathlib import Path

from skinattn.cli.argtypes import non_negative_int


def register(subparsers: argparse._SubParsersAction) -> None:
    compare = subparsers.add_parser(
        "compare",
        help="paired SA - baseline comparison of evaluation folders: bootstrap CIs, McNemar, DeLong and a verdict",
        description=(
            "Read the folders written by 'skinattn evaluate' (metrics.json + predictions.csv) of models with and "
            "without Soft Attention, trained with the same seeds and evaluated on the same test images, pair them by "
            "architecture and training seed, and write the repeated ablation's report into --out: paired.md (the "
            "one-sentence verdict first), paired.csv, paired.json, paired.png and report.html. The same report as "
            "the ablation pipeline's table step (docs/evaluation.md, 'Repeated ablation')."
        ),
    )
    compare.add_argument("evaluations", nargs="+", type=Path, metavar="EVALUATION_DIR",
                         help="folders written by 'skinattn evaluate', at least one per arm and seed")  # fmt: skip
    compare.add_argument("--out", required=True, type=Path, help="output folder")
    compare.add_argument("--bootstrap", type=non_negative_int, default=2000,
                         help="paired bootstrap resamples over the test images (default 2000; 0 = no CIs, no verdict)")  # fmt: skip
    compare.add_argument("--confidence", type=float, default=0.95, help="confidence level of the intervals (default 0.95)")
    compare.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    compare.set_defaults(handler=_compare)


def _compare(args: argparse.Namespace) -> int:
    from skinattn.evaluation.paired_report import markdown, paired_ablation, read_cell, write_outputs

    report = paired_ablation([read_cell(folder) for folder in args.evaluations], n_resamples=args.bootstrap,
                             confidence=args.confidence, seed=args.seed)  # fmt: skip
    written = write_outputs(report, args.out)
    print(markdown(report))
    print(f"wrote {', '.join(sorted(path.name for path in written.values()))} to {args.out}")
    return 0
