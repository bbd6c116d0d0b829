"""``python -m serving serve`` up to the point where it execs BentoML, and ``bentoml build`` of the serving bento."""

from __future__ import annotations

import subprocess
import sys

import pytest
import yaml

from _serving_helpers import REPO, make_registered_model, serving_env


def run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(args, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)


def test_serve_dry_run_exports_a_model_folder_and_prints_the_bentoml_command(tmp_path):
    model_dir, _ = make_registered_model(tmp_path)
    env = serving_env(tmp_path / "bentoml")
    result = run([sys.executable, "-m", "serving", "serve", "--model", str(model_dir), "--port", "3999", "--dry-run"], env)
    assert result.returncode == 0, result.stderr
    assert "bentoml serve serving.service:SkinattnClassifier --host 127.0.0.1 --port 3999" in result.stdout
    tag = result.stderr.split("SKINATTN_MODEL_TAG=")[1].split(")")[0]
    assert tag.startswith("skinattn:local-")
    exported = next((tmp_path / "bentoml" / "models" / "skinattn").glob("local-*"))
    assert sorted(p.name for p in exported.iterdir() if p.suffix in {".json", ".safetensors"}) == ["model.json", "model.safetensors"]
    again = run([sys.executable, "-m", "serving", "serve", "--model", str(model_dir), "--dry-run"], env)
    assert again.returncode == 0 and tag in again.stderr  # same weights: the same BentoML model, not a new one


def test_serve_names_a_missing_registry_version(tmp_path):
    _, registry = make_registered_model(tmp_path)
    result = run([sys.executable, "-m", "serving", "serve", "--root", str(registry), "--model", "v9", "--dry-run"],
                 serving_env(tmp_path / "bentoml"))
    assert result.returncode == 2
    assert "no version v9" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.slow
def test_bentoml_build_packs_the_service_and_the_model(tmp_path):
    _, registry = make_registered_model(tmp_path)
    env = serving_env(tmp_path / "bentoml")
    export = run([sys.executable, "-m", "serving", "export", "--model", "production", "--root", str(registry)], env)
    assert export.returncode == 0, export.stderr
    tag = export.stdout.strip()
    env["SKINATTN_MODEL_TAG"] = tag
    build = run([sys.executable, "-m", "bentoml", "build", "-f", "serving/bentofile.yaml", "."], env)
    assert build.returncode == 0, build.stdout + build.stderr
    (bento_dir,) = [p for p in (tmp_path / "bentoml" / "bentos" / "skinattn").iterdir() if p.name != "latest"]
    manifest = yaml.safe_load((bento_dir / "bento.yaml").read_text())
    assert manifest["service"] == "serving.service:SkinattnClassifier"
    # The public API service and the model service it depends on, both on the one exported model (the API
    # service reads its card, the model service its weights).
    services = {s["name"]: s for s in manifest["services"]}
    assert sorted(services) == ["skinattn", "skinattn-model"]
    assert all([m["tag"] for m in s["models"]] == [tag] for s in services.values())
    assert services["skinattn"]["dependencies"] == [{"service": "skinattn-model"}]
    assert services["skinattn-model"]["config"]["runner_connection"]["max_requests"] > 10**12  # never recycled
    assert [route["route"] for route in manifest["schema"]["routes"]] == ["/classify"]  # the only public API
    assert (bento_dir / "src" / "serving" / "service.py").is_file()
    assert (bento_dir / "src" / "skinattn" / "inference.py").is_file()
    assert not list((bento_dir / "src").rglob("test_*.py"))
