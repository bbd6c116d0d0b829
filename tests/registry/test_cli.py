"""``skinattn registry ...`` run as real subprocesses, against a folder and S3 (the BentoML export is
``python -m serving export``: tests/serving/test_export.py)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from _registry_helpers import PYTHON, cli_env

from skinattn.registry import Registry


def skinattn(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [PYTHON, "-m", "skinattn", *args], env=env or cli_env(), cwd=cwd, capture_output=True, text=True, timeout=180
    )


def test_register_list_show_promote_with_the_root_from_the_environment(
    tmp_path: Path, model_dir: Path, write_metrics: Callable[..., Path]
) -> None:
    root = tmp_path / "reg"
    env = cli_env(SKINATTN_REGISTRY=str(root))
    (tmp_path / "params.json").write_text('{"epochs": 7}', encoding="utf-8")
    first = skinattn("registry", "register", str(model_dir), "--metrics", str(write_metrics(accuracy=0.8, loss=0.6)),
                     "--run-id", "run-a", "--params", str(tmp_path / "params.json"), "--promote-if-better", "accuracy", env=env)
    assert first.returncode == 0, first.stderr
    assert first.stdout.splitlines() == [f"registered v1 in {root}", "promoted: no production version yet: v1 becomes production"]

    second = skinattn("registry", "register", str(model_dir), "--metrics", str(write_metrics(accuracy=0.7, loss=0.5)),
                      "--run-id", "run-b", "--promote-if-better", "accuracy", "--json", env=env)
    assert second.returncode == 0, second.stderr
    payload = json.loads(second.stdout)
    assert payload["version"]["version"] == "v2" and payload["decision"]["promoted"] is False

    listed = json.loads(skinattn("registry", "list", "--json", env=env).stdout)
    rows = [(row["version"], row["production"], row["run_id"]) for row in listed]
    assert rows == [("v1", True, "run-a"), ("v2", False, "run-b")]
    assert listed[0]["params"] == {"epochs": 7} and listed[1]["metrics"] == {"accuracy": 0.7, "loss": 0.5}
    table = skinattn("registry", "list", env=env).stdout.splitlines()
    # Headline metrics only by default; loss is not one of them.
    assert table[0].startswith("* v1") and table[1].startswith("  v2") and "accuracy=0.7" in table[1]
    assert "loss=" not in table[1]
    chosen = skinattn("registry", "list", "--metric", "loss", env=env).stdout.splitlines()
    assert "loss=0.5" in chosen[1] and "accuracy=" not in chosen[1]
    assert "loss=0.5" in skinattn("registry", "list", "--metric", "all", env=env).stdout

    assert json.loads(skinattn("registry", "show", "production", env=env).stdout)["version"] == "v1"

    worse = skinattn("registry", "promote", "v2", "--metric", "accuracy", env=env)
    assert worse.returncode == 1 and worse.stdout.startswith("not promoted: v2 accuracy=0.7 does not beat v1")
    better = skinattn("registry", "promote", "v2", "--metric", "loss", "--json", env=env)
    assert better.returncode == 0 and json.loads(better.stdout)["promoted"] is True
    assert Registry(root).production().version == "v2"


def test_cli_errors_are_one_line_with_exit_2(tmp_path: Path, model_dir: Path) -> None:
    bad = tmp_path / "metrics.json"
    bad.write_text("{oops", encoding="utf-8")
    root = str(tmp_path / "reg")
    result = skinattn("registry", "register", str(model_dir), "--metrics", str(bad), "--root", root)
    assert result.returncode == 2
    assert result.stderr.strip().startswith(f"skinattn registry: error: {bad}: metrics file is not valid JSON (Expecting")
    assert len(result.stderr.strip().splitlines()) == 1  # one line, no traceback
    absent = skinattn("registry", "show", "v3", "--root", root)  # the failed register created nothing
    assert absent.returncode == 2 and f"{root}: no registry here, the folder does not exist" in absent.stderr
    Path(root).mkdir()  # an empty registry
    missing = skinattn("registry", "show", "v3", "--root", root)
    assert missing.returncode == 2 and missing.stderr.strip() == f"skinattn registry: error: {root}: no version v3"
    no_metric = skinattn("registry", "promote", "v1", "--root", root)
    assert no_metric.returncode == 2 and "needs --metric" in no_metric.stderr


def test_register_and_list_on_s3(s3_bucket: str, model_dir: Path, write_metrics: Callable[..., Path], tmp_path: Path) -> None:
    root = f"s3://{s3_bucket}/team/models"
    (tmp_path / "manifest.csv").write_text("image_id,image_path,label,lesion_id\na,a.jpg,nv,a\n", encoding="utf-8")
    result = skinattn("registry", "register", str(model_dir), "--metrics", str(write_metrics(auc=0.9)), "--root", root,
                      "--data-manifest", str(tmp_path), "--promote-if-better", "auc")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0] == f"registered v1 in {root}"
    shown = json.loads(skinattn("registry", "show", "production", "--root", root).stdout)
    assert shown["data_fingerprint"].startswith("sha256:") and shown["metrics"] == {"auc": 0.9}
    keys = Registry(root).store.list("versions")
    assert keys == ["versions/000001.json"]


def test_the_core_library_and_the_cli_do_not_import_bentoml() -> None:
    code = (
        "import sys\n"
        "import skinattn.registry\n"
        "print(','.join(m for m in ('bentoml', 'kfp', 'torch') if m in sys.modules))\n"
        "from skinattn.cli import build_parser\n"
        "build_parser()\n"
        "print(','.join(m for m in ('bentoml', 'kfp', 'serving') if m in sys.modules))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    # Listing and promoting need neither torch nor BentoML; building the whole CLI must pull in neither BentoML
    # nor kfp nor the serving package (exporting to BentoML is `python -m serving export`, tests/serving).
    assert result.stdout.splitlines() == ["", ""]


@pytest.mark.parametrize("action", ["register", "list", "show", "promote"])
def test_help_of_every_action(action: str) -> None:
    result = skinattn("registry", action, "--help")
    assert result.returncode == 0 and "--root" in result.stdout
