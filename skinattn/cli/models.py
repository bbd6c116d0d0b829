"""``skinattn models ...`` and ``skinattn predict``: build, inspect and run Soft-Attention models."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    models = subparsers.add_parser("models", help="list, build and inspect architectures and saved models")
    sub = models.add_subparsers(dest="models_command", metavar="ACTION", required=True)

    list_parser = sub.add_parser("list", help="the architectures, their input size and SA insertion point")
    list_parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    list_parser.set_defaults(handler=_list)

    init = sub.add_parser(
        "init",
        help="build a model (random or pretrained backbone weights) and save it as safetensors + JSON card",
    )
    init.add_argument("arch", help="architecture name (see 'skinattn models list')")
    init.add_argument("--out", required=True, type=Path, help="folder to write model.safetensors and model.json")
    init.add_argument("--no-soft-attention", action="store_true", help="build the paper's baseline without SA")
    init.add_argument("--num-classes", type=int, default=7, help="output classes (default 7, the HAM10000 codes)")
    init.add_argument("--class-names", help="comma-separated class names (length sets --num-classes)")
    init.add_argument("--img-size", type=int, help="square input size in px (default: the arch's native size)")
    init.add_argument(
        "--pretrained",
        help="'timm' for timm hub weights (needs internet), or a timm-format weights file (.safetensors, or "
        ".pth/.pt/.bin read with weights_only=True) as a local path or s3://bucket/key; its sha256 goes into the card",
    )
    init.add_argument("--seed", type=int, default=0, help="seed for the random initialisation (default 0)")
    init.set_defaults(handler=_init)

    show = sub.add_parser("show", help="print a saved model's card and parameter count")
    show.add_argument("model", type=Path, help="model folder")
    show.set_defaults(handler=_show)

    predict = subparsers.add_parser("predict", help="classify images with a saved model")
    predict.add_argument("--model", required=True, type=Path, help="model folder (model.safetensors + model.json)")
    predict.add_argument("images", nargs="+", type=Path, help="JPEG or PNG files")
    predict.add_argument("--overlay-dir", type=Path, help="also write attention overlays (PNG) into this folder")
    predict.add_argument("--json", action="store_true", help="print JSON lines instead of a table")
    predict.set_defaults(handler=_predict)


def _list(args: argparse.Namespace) -> int:
    from skinattn.models import arch_spec, list_archs

    rows = []
    for name in list_archs():
        spec = arch_spec(name)
        c, h, w = spec.insertion_shape
        rows.append(
            {
                "arch": name,
                "timm": spec.timm_name,
                "input": spec.input_size,
                "sa_input": f"{h}x{w}x{c}",
                "insertion": spec.insertion,
                "small": spec.small,
            }
        )
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        _print_table(rows, ["arch", "timm", "input", "sa_input", "small", "insertion"])
    return 0


def _init(args: argparse.Namespace) -> int:
    import torch

    from skinattn.models import create_model, save_model

    torch.manual_seed(args.seed)
    class_names = [c.strip() for c in args.class_names.split(",")] if args.class_names else None
    pretrained: bool | str = False
    if args.pretrained == "timm":
        pretrained = True
    elif args.pretrained:
        pretrained = args.pretrained
    model = create_model(
        args.arch,
        num_classes=len(class_names) if class_names else args.num_classes,
        soft_attention=not args.no_soft_attention,
        pretrained=pretrained,
        class_names=class_names,
        img_size=args.img_size,
    )
    save_model(model, args.out, metadata={"initialised_from": str(args.pretrained or "random"), "seed": args.seed})
    print(f"saved {args.arch} ({'SA' if model.has_attention else 'baseline'}) to {args.out}")
    return 0


def _show(args: argparse.Namespace) -> int:
    from safetensors.torch import load_file

    from skinattn.models.weights import WEIGHTS_FILE, read_card

    card = read_card(args.model)
    state = load_file(str(args.model / card.get("weights", WEIGHTS_FILE)))
    print(json.dumps(card | {"stored_tensor_elements": sum(t.numel() for t in state.values())}, indent=2))
    return 0


def _predict(args: argparse.Namespace) -> int:
    from skinattn.data.images import open_image
    from skinattn.inference import Predictor
    from skinattn.models import describe_calibration, overlay

    predictor = Predictor(args.model)
    images = [open_image(str(path), at_least=predictor.config.input_size) for path in args.images]
    predictions = predictor.predict(images, with_attention=args.overlay_dir is not None)
    rows = []
    for path, image, prediction in zip(args.images, images, predictions):
        rows.append({"image": str(path), "top_class": prediction.top_class} | {k: round(v, 4) for k, v in prediction.probabilities.items()})
        if args.overlay_dir is not None and prediction.heatmap is not None:
            args.overlay_dir.mkdir(parents=True, exist_ok=True)
            overlay(image, prediction.heatmap).save(args.overlay_dir / f"{path.stem}_attention.png")
    if args.json:
        for row in rows:
            print(json.dumps(row))
    else:
        _print_table(rows, list(rows[0]))
    if args.overlay_dir is not None and not predictor.model.has_attention:
        print("note: this model has no soft attention; no overlays written")
    # On stderr, so that --json output stays one JSON object per line.
    print(f"probabilities: {describe_calibration(predictor.model.calibration)}", file=sys.stderr)
    return 0


def _print_table(rows: list[dict], columns: list[str]) -> None:
    widths = {c: max(len(c), *(len(str(r[c])) for r in rows)) for c in columns}
    print("  ".join(c.ljust(widths[c]) for c in columns))
    print("  ".join("-" * widths[c] for c in columns))
    for row in rows:
        print("  ".join(str(row[c]).ljust(widths[c]) for c in columns))
