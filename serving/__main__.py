"""``python -m serving``: export a model to the BentoML model store, or serve it over HTTP.

Run from the repository root (the folder that holds ``serving/``), with the project's Python::

    python -m serving serve [--model production|v3|FOLDER] [--root URI] [--host H] [--port P] [--dry-run]
    python -m serving export [--model production|v3|FOLDER] [--root URI] [--name skinattn]

``export`` prints the BentoML tag (for ``SKINATTN_MODEL_TAG`` and ``bentoml build``); ``serve`` exports, then
replaces itself with ``bentoml serve serving.service:SkinattnClassifier`` with ``SKINATTN_MODEL_TAG`` set,
so that signals (Ctrl-C, SIGTERM from a supervisor) reach the server directly. These commands live here
and not in the ``skinattn`` CLI because they need BentoML and this folder, which the core library does not.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

# Before serving.export imports bentoml: no usage-tracking calls (machines here have no internet).
os.environ.setdefault("BENTOML_DO_NOT_TRACK", "True")

from serving.export import DEFAULT_MODEL_NAME, export_model  # noqa: E402
from skinattn.errors import SkinattnError  # noqa: E402

SERVICE = "serving.service:SkinattnClassifier"
TAG_ENV = "SKINATTN_MODEL_TAG"
# bentoml serve imports SERVICE from here: the folder that holds this package.
SERVICE_DIR = Path(__file__).resolve().parents[1]
PROG = "python -m serving"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Export a skinattn model to the BentoML model store, or serve it over HTTP with BentoML. "
        "Run from the repository root with the project's Python.",
    )
    model = argparse.ArgumentParser(add_help=False)
    model.add_argument(
        "--model",
        default="production",
        metavar="VERSION|PATH",
        help="registry version ('production', 'latest', 'v3', '3') or a model folder (model.json + "
        "model.safetensors); a folder wins when both exist (default: production)",
    )
    model.add_argument("--root", help="registry root: a folder or s3://bucket/prefix (default: $SKINATTN_REGISTRY, else ./registry)")
    model.add_argument(
        "--name", default=DEFAULT_MODEL_NAME,
        help="BentoML model name (default skinattn; the tag is NAME:v3, or NAME:local-<sha256> for a folder)",
    )  # fmt: skip
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    export = sub.add_parser(
        "export",
        parents=[model],
        help="copy a model into the BentoML model store and print its tag",
        description="Copy a registry version or a model folder into the BentoML model store ($BENTOML_HOME) "
        "and print its tag, e.g. for SKINATTN_MODEL_TAG before `bentoml build -f serving/bentofile.yaml .`. "
        "Exporting the same weights again prints the existing tag; another model under that tag is refused.",
    )
    export.set_defaults(handler=_export)

    serve = sub.add_parser(
        "serve",
        parents=[model],
        help="serve a model over HTTP (POST /classify, /livez, /readyz, /metrics)",
        description="Export the model (as `export` does), then run `bentoml serve serving.service:SkinattnClassifier` "
        f"on it with {TAG_ENV} set.",
    )
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1; 0.0.0.0 for all interfaces)")
    serve.add_argument("--port", type=int, default=3000, help="port to listen on (default 3000)")
    serve.add_argument("--dry-run", action="store_true", help="export the model and print the serve command without running it")
    serve.set_defaults(handler=_serve)
    return parser


def _export(args: argparse.Namespace) -> int:
    print(export_model(args.model, args.root, model_name=args.name))
    return 0


def _serve(args: argparse.Namespace) -> int:
    tag = export_model(args.model, args.root, model_name=args.name)
    command = [
        sys.executable, "-m", "bentoml", "serve", SERVICE,
        "--host", args.host, "--port", str(args.port), "--working-dir", str(SERVICE_DIR),
    ]  # fmt: skip
    print(f"serving {tag} on http://{args.host}:{args.port} ({TAG_ENV}={tag})", file=sys.stderr, flush=True)
    if args.dry_run:
        print(" ".join(command))
        return 0
    os.execve(sys.executable, command, dict(os.environ, **{TAG_ENV: tag}))
    return 0  # pragma: no cover - execve does not return


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; a user's mistake (unknown version, not a model folder, a tag clash) is one line on
    stderr and exit 2, like the ``skinattn`` CLI."""
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
    except SkinattnError as exc:
        print(f"{PROG} {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
