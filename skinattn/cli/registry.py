"""``skinattn registry ...``: register model versions, list them, show one, promote.

Exporting a version to BentoML is ``python -m serving export`` (``serving/export.py``): the core package
does not import BentoML.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

_ROOT_HELP = "registry root: a folder or s3://bucket/prefix (default: $SKINATTN_REGISTRY, else ./registry)"


# The figures people compare versions by (names as in metrics.json of 'skinattn evaluate', flattened).
HEADLINE_METRICS = ("accuracy", "balanced_accuracy", "weighted_avg.precision", "weighted_avg.auc", "macro_avg.auc")

def register(subparsers: argparse._SubParsersAction) -> None:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--root", help=_ROOT_HELP)

    registry = subparsers.add_parser("registry", help="register, list, show and promote model versions")
    sub = registry.add_subparsers(dest="registry_command", metavar="ACTION", required=True)

    add = sub.add_parser(
        "register",
        parents=[common],
        help="store a model folder (model.safetensors + model.json) and its metrics as a new immutable version",
    )
    add.add_argument("model_dir", type=Path, metavar="MODEL_DIR", help="model folder written by training")
    add.add_argument("--metrics", required=True, type=Path, help="metrics JSON object (e.g. from evaluate)")
    add.add_argument("--params", type=Path, help="training parameters JSON (default: the card's metadata.params)")
    fingerprint = add.add_mutually_exclusive_group()
    fingerprint.add_argument("--data-fingerprint", help="fingerprint of the data (default: the card's metadata)")
    fingerprint.add_argument("--data-manifest", type=Path, help="manifest folder to fingerprint (sha256 of manifest.csv)")
    add.add_argument("--run-id", help="pipeline run id that produced the model")
    add.add_argument(
        "--promote-if-better",
        metavar="METRIC",
        help="then promote the new version if it strictly beats production on METRIC",
    )
    add.add_argument("--direction", choices=("higher", "lower"), help="which way METRIC is better (default: from its name)")
    add.add_argument("--json", action="store_true", help="print the version (and decision) as JSON")
    add.set_defaults(handler=_register)

    listing = sub.add_parser("list", parents=[common], help="every version with its metrics; * marks production")
    listing.add_argument("--json", action="store_true", help="print JSON instead of a table")
    listing.add_argument(
        "--metric",
        action="append",
        dest="metrics",
        metavar="NAME",
        help=f"metric column to show (repeatable; default: {', '.join(HEADLINE_METRICS)}); 'all' shows every metric",
    )
    listing.set_defaults(handler=_list)

    show = sub.add_parser("show", parents=[common], help="print one version's record as JSON (or its model card)")
    show.add_argument("version", metavar="VERSION", help="v3, 3, 'production' or 'latest'")
    show.add_argument("--card", action="store_true",
                      help="print the version's model card (MODEL_CARD.md: intended use, data, metrics, subgroups)")
    show.set_defaults(handler=_show)

    promote = sub.add_parser(
        "promote",
        parents=[common],
        help="make VERSION production if it strictly beats production on --metric (exit 1 when not promoted)",
    )
    promote.add_argument("version", metavar="VERSION", help="v3, 3 or 'latest'")
    promote.add_argument("--metric", help="metric to compare on, e.g. auc or accuracy (dotted for nested: weighted_avg.auc)")
    promote.add_argument(
        "--direction", choices=("higher", "lower"), help="which way the metric is better (default: from its name)"
    )
    promote.add_argument("--force", action="store_true", help="promote without comparing (rollback); recorded in the log")
    promote.add_argument("--json", action="store_true", help="print the decision as JSON")
    promote.set_defaults(handler=_promote)



def _open(args: argparse.Namespace, *, existing: bool = True):  # noqa: ANN202 - Registry is imported lazily
    """The registry at ``--root``. Every action but ``register`` reads one that must already exist: a local
    root that is not there is a typo, not an empty registry (``register`` creates it)."""
    from skinattn.registry import Registry
    from skinattn.registry.errors import RegistryError
    from skinattn.registry.object_store import LocalStore

    registry = Registry(args.root)
    if existing and isinstance(registry.store, LocalStore) and not registry.store.root.is_dir():
        raise RegistryError(f"{registry.store.root}: no registry here, the folder does not exist (check --root "
                            "or $SKINATTN_REGISTRY; 'registry register' creates one)")  # fmt: skip
    return registry


def _read_json_object(path: Path, what: str) -> dict:
    from skinattn.registry import RegistryError

    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise RegistryError(f"{path}: cannot read {what} JSON ({exc})") from exc
    if not isinstance(data, dict):
        raise RegistryError(f"{path}: {what} must be a JSON object")
    return data


def _print_decision(decision) -> None:  # noqa: ANN001 - PromotionDecision
    print(("promoted: " if decision.promoted else "not promoted: ") + decision.reason)


def _register(args: argparse.Namespace) -> int:
    from skinattn.registry import fingerprint_manifest

    registry = _open(args, existing=False)
    params = _read_json_object(args.params, "params") if args.params else None
    fingerprint = fingerprint_manifest(args.data_manifest) if args.data_manifest else args.data_fingerprint
    version = registry.register(
        args.model_dir, args.metrics, params=params, data_fingerprint=fingerprint, run_id=args.run_id, progress=True
    )
    decision = None
    if args.promote_if_better:
        decision = registry.promote(version.version, args.promote_if_better, direction=args.direction)
    if args.json:
        out = {"version": version.to_dict(), "decision": decision.to_dict() if decision else None}
        print(json.dumps(out, indent=2))
    else:
        print(f"registered {version.version} in {registry.uri}")
        if decision is not None:
            _print_decision(decision)
    return 0


def _list(args: argparse.Namespace) -> int:
    registry = _open(args)
    versions = registry.versions()
    head = registry.promotions()
    production = head[-1].version if head else None
    if args.json:
        rows = [v.to_dict() | {"production": v.version == production} for v in versions]
        print(json.dumps(rows, indent=2))
        return 0
    if not versions:
        print(f"{registry.uri}: no versions yet")
        return 0
    for v in versions:
        marker = "*" if v.version == production else " "
        metrics = " ".join(f"{k}={_fmt(v.metrics[k])}" for k in _columns(v.metrics, args.metrics))
        arch = v.model.get("arch", "?") + ("+SA" if v.model.get("soft_attention") else "")
        print(f"{marker} {v.version:<6} {v.registered_at}  {arch:<22} run={v.run_id or '-'}  {metrics}")
    return 0


def _columns(metrics: dict[str, float | None], chosen: list[str] | None) -> list[str]:
    """The metric names to print: the chosen ones, or the headline ones a version has (evaluate's names)."""
    if chosen and "all" in chosen:
        return sorted(metrics)
    return [name for name in (chosen or HEADLINE_METRICS) if name in metrics]


def _fmt(value: float | None) -> str:
    return "nan" if value is None else f"{value:.4g}"


def _show(args: argparse.Namespace) -> int:
    from skinattn.registry.core import dumps_version

    registry = _open(args)
    version = registry.get(args.version)
    print(registry.model_card(version) if args.card else dumps_version(version))
    return 0


def _promote(args: argparse.Namespace) -> int:
    from skinattn.registry import RegistryError

    if not args.metric and not args.force:
        raise RegistryError("promote needs --metric (or --force to promote without comparing)")
    decision = _open(args).promote(args.version, args.metric, direction=args.direction, force=args.force)
    if args.json:
        print(json.dumps(decision.to_dict(), indent=2))
    else:
        _print_decision(decision)
    return 0 if decision.promoted else 1
