"""``skinattn evaluate`` and ``skinattn explain``: judge a saved model in the paper's terms and show why it decides."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from skinattn.cli.argtypes import add_threads_argument, apply_threads_argument, non_negative_int
from skinattn.cli.ingest import FORMATS as FORMAT_CHOICES


def register(subparsers: argparse._SubParsersAction) -> None:
    evaluate = subparsers.add_parser(
        "evaluate",
        help="metrics, paper tables, ISIC-layout predictions, figures and an HTML report for one manifest split",
        description=(
            "Evaluate a saved model on one split of a prepared manifest. Writes metrics.json, table.csv/.md "
            "(paper Table 1/2 layout), predictions.csv, predictions_isic.csv, confusion_matrix.png, roc.png, "
            "reliability.png (calibration: ECE at T = 1 and with the model's stored temperature, which every "
            "probability is computed with), subgroups.png (balanced accuracy by sex, age band and site, when the "
            "manifest has those columns; also metrics.json 'subgroups'), overlays/, the model card (MODEL_CARD.md, "
            "model_card.json) and a self-contained report.html into --out. With --external-test, the model is also evaluated "
            "on an external collection, shown beside the internal split."
        ),
    )
    evaluate.add_argument("--model", required=True, type=Path, help="model folder (model.safetensors + model.json)")
    evaluate.add_argument("--manifest", required=True, type=Path, help="manifest folder or manifest.csv")
    evaluate.add_argument(
        "--split", default="test", help="split to evaluate: train, val or test (default test); 'all' for every row"
    )
    evaluate.add_argument("--out", required=True, type=Path, help="output folder")
    evaluate.add_argument("--batch-size", type=int, default=32, help="images per forward pass (default 32)")
    evaluate.add_argument("--workers", type=non_negative_int, default=0, help="DataLoader worker processes (default 0)")
    evaluate.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto (default: cuda when visible)")
    evaluate.add_argument(
        "--bootstrap", type=int, default=1000, help="bootstrap resamples for the confidence intervals (default 1000; 0 = off)"
    )
    evaluate.add_argument("--confidence", type=float, default=0.95, help="confidence level of the intervals (default 0.95)")
    evaluate.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    evaluate.add_argument(
        "--positive-class",
        help="class of the binary view (paper Table 4: AUC, accuracy, sensitivity, specificity); "
        "default: the second class of a two-class model, none otherwise",
    )
    evaluate.add_argument(
        "--threshold", type=float, default=0.5, help="probability at which --positive-class is called (default 0.5)"
    )
    evaluate.add_argument(
        "--explain-per-class", type=int, default=2, help="images per class shown with overlays in the report (default 2)"
    )
    evaluate.add_argument(
        "--external-test",
        metavar="URI",
        help="also evaluate on this external test set (a folder, .zip or s3://bucket/prefix in any --external-format): "
        "metrics.json gains 'external' and 'shift', the report shows internal and external side by side; rows whose "
        "label is not a class of the model are counted and named, not scored",
    )
    evaluate.add_argument(
        "--external-format",
        default="isic-archive",
        choices=FORMAT_CHOICES,
        help="layout of --external-test, as for 'skinattn ingest --format' (default isic-archive)",
    )
    evaluate.add_argument("--quiet", action="store_true", help="no progress bars")
    add_threads_argument(evaluate)
    evaluate.set_defaults(handler=_evaluate)

    explain = subparsers.add_parser(
        "explain",
        help="write Soft-Attention and Grad-CAM overlay PNGs for images",
        description=(
            "For each image write <stem>_attention.png (SA models only), <stem>_gradcam.png, <stem>_input.png "
            "and <stem>_panel.png (the three side by side) into --out, and print the predictions."
        ),
    )
    explain.add_argument("--model", required=True, type=Path, help="model folder (model.safetensors + model.json)")
    explain.add_argument("images", nargs="+", type=Path, help="JPEG or PNG files")
    explain.add_argument("--out", required=True, type=Path, help="output folder for the PNGs")
    explain.add_argument("--target-class", help="class Grad-CAM explains (default: each image's predicted class)")
    explain.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto (default: cuda when visible)")
    explain.set_defaults(handler=_explain)


def _evaluate(args: argparse.Namespace) -> int:
    from skinattn.evaluation import EvaluationSettings, evaluate
    from skinattn.evaluation.external import ExternalTestSet
    from skinattn.evaluation.tables import class_table, headline_markdown, to_markdown

    apply_threads_argument(args)
    settings = EvaluationSettings(
        split=None if args.split == "all" else args.split,
        batch_size=args.batch_size,
        workers=args.workers,
        device=args.device,
        n_bootstrap=args.bootstrap,
        confidence=args.confidence,
        seed=args.seed,
        threshold=args.threshold,
        positive_class=args.positive_class,
        explain_per_class=args.explain_per_class,
        progress=not args.quiet,
    )
    external = ExternalTestSet(args.external_test, args.external_format) if args.external_test else None
    metrics = evaluate(args.model, args.manifest, args.out, settings, external=external)
    print(to_markdown(class_table(metrics)))
    print(headline_markdown(metrics).replace("**", ""), end="")
    calibration = metrics["calibration"]
    if calibration["temperature"] == 1.0:
        print(f"calibration: ECE {calibration['ece']:.3f} (the model has no fitted temperature: probabilities at T = 1)")
    else:
        print(f"calibration: ECE {calibration['ece']:.3f} at the model's temperature T = {calibration['temperature']:.4g}, "
              f"{calibration['ece_uncalibrated']:.3f} at T = 1")
    for note in metrics["notes"]:
        print(f"note: {note}")
    if external is not None:
        print(f"external test set {external.uri} ({metrics['external']['images']} images):")
        print(headline_markdown(metrics["external"]).replace("**", ""), end="")
        for note in metrics["external"]["notes"]:
            print(f"note: {note}")
    print(f"wrote metrics, tables, predictions, figures, MODEL_CARD.md and report.html to {args.out}")
    return 0


def _explain(args: argparse.Namespace) -> int:
    from skinattn.data.images import open_image
    from skinattn.evaluation import Explainer
    from skinattn.evaluation.run import save_explanation
    from skinattn.models import load_model

    explainer = Explainer(load_model(args.model), args.device)
    images = [open_image(str(path), at_least=explainer.model.config.input_size) for path in args.images]
    explanations = explainer.explain(images, target_class=args.target_class)
    for path, explanation in zip(args.images, explanations):
        written = save_explanation(explanation, args.out, path.stem)
        print(
            json.dumps(
                {
                    "image": str(path),
                    "predicted": explanation.predicted,
                    "grad_cam_class": explanation.target_class,
                    "probabilities": {k: round(v, 4) for k, v in explanation.probabilities.items()},
                    "written": sorted(p.name for p in written.values()),
                }
            )
        )
    if not explainer.model.has_attention:
        print("note: this model has no soft attention: Grad-CAM overlays only")
    print(f"Grad-CAM target layer: {explainer.target_layer_description}")
    return 0
