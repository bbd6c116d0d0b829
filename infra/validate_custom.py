"""Validates rendered objects of kinds that kubernetes-validate has no schema for (custom resources).

``python infra/validate_custom.py RENDERED.yaml ...`` (run by ``infra/check.sh``, step 2, from the tool venv,
which has kubernetes-validate and jsonschema) checks every object in the files:

- a kind that kubernetes-validate knows (the built-in Kubernetes API) is left to it (check.sh runs it on the
  same files, strictly, for each supported Kubernetes version);
- any other kind is validated, strictly, against the schema vendored in ``infra/schemas`` under the name
  kubernetes-validate would use, ``<kind>-<group's first label>-<version>.json`` (``monitoring.coreos.com/v1``
  ServiceMonitor: ``servicemonitor-monitoring-v1.json``);
- a kind with neither schema fails: kubernetes-validate alone would only print a warning and pass it.

Prints one line per object (``ok``/``FAILED``) and exits 1 if any failed. The functions work without
kubernetes-validate (``tests/infra`` calls them from the project's venv).
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Callable, Iterable
from pathlib import Path

import yaml

SCHEMA_DIR = Path(__file__).resolve().parent / "schemas"


def schema_name(obj: dict) -> str:
    """``servicemonitor-monitoring-v1.json`` for a ``monitoring.coreos.com/v1`` ServiceMonitor (the naming of
    kubernetes-validate: the group's first label, ``-``, the version; ``v1`` alone for the core group)."""
    api_version = re.sub(r"^([^./]*)(?:\.[^/]*)?/", r"\1-", obj["apiVersion"])
    return f"{obj['kind'].lower()}-{api_version}.json"


def vendored_schema_errors(obj: dict, schema_dir: Path = SCHEMA_DIR) -> list[str] | None:
    """The validation errors of ``obj`` against its vendored schema (empty: valid), or None without one."""
    import jsonschema

    path = schema_dir / schema_name(obj)
    if not path.is_file():
        return None
    validator = jsonschema.Draft202012Validator(json.loads(path.read_text(encoding="utf-8")))
    errors = sorted(validator.iter_errors(obj), key=lambda e: list(e.absolute_path))
    return [f"{'.'.join(str(p) for p in e.absolute_path) or '(root)'}: {e.message}" for e in errors]


def kubernetes_validate_knows(version: str) -> Callable[[dict], bool]:
    """Whether kubernetes-validate has a schema for an object's kind at Kubernetes ``version``."""
    import kubernetes_validate

    def knows(obj: dict) -> bool:
        try:
            kubernetes_validate.validate(obj, version, strict=True)
        except kubernetes_validate.SchemaNotFoundError:
            return False
        except kubernetes_validate.ValidationError:
            pass  # a schema exists; check.sh reports the error through kubernetes-validate itself
        return True

    return knows


def check(objects: Iterable[dict], knows: Callable[[dict], bool], schema_dir: Path = SCHEMA_DIR) -> list[str]:
    """Problems of the objects that ``knows`` does not cover, one line each; prints what passed."""
    problems = []
    for obj in objects:
        if knows(obj):
            continue
        where = f"{obj.get('kind')}/{obj.get('metadata', {}).get('name')} ({obj.get('apiVersion')})"
        errors = vendored_schema_errors(obj, schema_dir)
        if errors is None:
            problems.append(f"{where}: no schema, neither in kubernetes-validate nor {schema_dir / schema_name(obj)}; "
                            "vendor one (a strict subset of the CRD's openAPIV3Schema will do)")  # fmt: skip
        elif errors:
            problems.extend(f"{where}: {error}" for error in errors)
        else:
            print(f"ok   {where} against {schema_dir.name}/{schema_name(obj)}")
    return problems


def main(argv: list[str]) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python infra/validate_custom.py", description=__doc__.splitlines()[0])
    parser.add_argument("-k", "--kubernetes-version", default="1.37.0",
                        help="whose built-in kinds are left to kubernetes-validate (default 1.37.0)")  # fmt: skip
    parser.add_argument("files", nargs="+", metavar="RENDERED.yaml")
    args = parser.parse_args(argv)
    knows = kubernetes_validate_knows(args.kubernetes_version)
    failed = 0
    for name in args.files:
        with open(name, encoding="utf-8") as stream:
            objects = [doc for doc in yaml.safe_load_all(stream) if doc]
        for problem in check(objects, knows):
            print(f"FAILED {name}: {problem}")
            failed += 1
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
