"""``skinattn serve``: put a model into the BentoML store and run the HTTP endpoint on it.

The model is a registry version (``production``, ``latest``, ``v3``) exported with
:func:`skinattn.registry.bentoml_export.export_to_bentoml`, or a model folder on disk (``model.json`` +
``model.safetensors``). The command then replaces itself with ``bentoml serve serving.service:...`` with
``SKINATTN_MODEL_TAG`` set, so signals (Ctrl-C, SIGTERM from a supervisor) reach the server directly.
BentoML is imported only inside the handler: the core package never imports it at module level.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import sys
from pathlib import Path

SERVICE = "serving.service:SkinattnClassifier"
SERVICE_FILE = Path("serving") / "service.py"
TAG_ENV = "SKINATTN_MODEL_TAG"


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "serve",
        help="serve a model over HTTP with BentoML (POST /classify, /livez, /readyz, /metrics)",
        description=(
            "Export the chosen model to the BentoML model store, then run `bentoml serve` on the skinattn "
            "service. MODEL is a registry version (production, latest, v3) or a model folder."
        ),
    )
    parser.add_argument(
        "--model",
        default="production",
        metavar="VERSION|PATH",
        help="registry version ('production', 'latest', 'v3', '3') or a model folder (default: production)",
    )
    parser.add_argument("--root", help="registry root: a folder or s3://bucket/prefix (default: $SKINATTN_REGISTRY, else ./registry)")
    parser.add_argument("--name", default="skinattn", help="BentoML model name (default skinattn; the tag is NAME:VERSION)")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1; 0.0.0.0 for all interfaces)")
    parser.add_argument("--port", type=int, default=3000, help="port to listen on (default 3000)")
    parser.add_argument(
        "--service-dir",
        type=Path,
        help="folder that holds serving/service.py (default: the current folder, else the skinattn source checkout)",
    )
    parser.add_argument("--dry-run", action="store_true", help="export the model and print the serve command without running it")
    parser.set_defaults(handler=_serve)


def _service_dir(explicit: Path | None) -> Path:
    """The folder from which ``serving.service`` is importable."""
    from skinattn.errors import SkinattnError

    candidates = [explicit] if explicit else [Path.cwd(), Path(__file__).resolve().parents[2]]
    for folder in candidates:
        if (folder / SERVICE_FILE).is_file():
            return folder.resolve()
    where = " or ".join(str(c) for c in candidates)
    raise SkinattnError(f"no {SERVICE_FILE} in {where}; run from the skinattn checkout or pass --service-dir")


def _export_folder(model_dir: Path, model_name: str) -> str:
    """Put a model folder (not from the registry) into the BentoML store; the version is its weights' digest."""
    import bentoml

    from skinattn.models.weights import CARD_FILE, WEIGHTS_FILE, read_card

    card = read_card(model_dir)  # refuses a folder that is not a model, naming the file
    weights = model_dir / str(card.get("weights", WEIGHTS_FILE))
    digest = hashlib.sha256(weights.read_bytes()).hexdigest()
    tag = f"{model_name}:local-{digest[:16]}"
    try:
        return str(bentoml.models.get(tag).tag)  # same weights already exported
    except bentoml.exceptions.NotFound:
        pass
    metadata = {"version": f"local-{digest[:16]}", "source": str(model_dir.resolve()), "weights_sha256": digest}
    with bentoml.models.create(tag, labels={"source": "folder"}, metadata=metadata) as ref:
        for name in (weights.name, CARD_FILE):
            shutil.copy2(model_dir / name, Path(ref.path) / name)
    return str(ref.tag)


def _serve(args: argparse.Namespace) -> int:
    os.environ.setdefault("BENTOML_DO_NOT_TRACK", "True")  # before bentoml is imported: no network calls
    service_dir = _service_dir(args.service_dir)
    model_path = Path(args.model)
    if model_path.is_dir():
        tag = _export_folder(model_path, args.name)
    else:
        from skinattn.registry import Registry
        from skinattn.registry.bentoml_export import export_to_bentoml

        tag = export_to_bentoml(Registry(args.root), args.model, model_name=args.name)
    command = [
        sys.executable, "-m", "bentoml", "serve", SERVICE,
        "--host", args.host, "--port", str(args.port), "--working-dir", str(service_dir),
    ]
    print(f"serving {tag} on http://{args.host}:{args.port} ({TAG_ENV}={tag})", file=sys.stderr, flush=True)
    if args.dry_run:
        print(" ".join(command))
        return 0
    env = dict(os.environ, **{TAG_ENV: tag})
    os.execve(sys.executable, command, env)
    return 0  # pragma: no cover - execve does not return
