"""``python -m serving serve`` up to the point where it execs BentoML, and ``bentoml build`` of the serving bento."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from _serving_helpers import REPO, make_registered_model, serving_env


def run(args: list[str], env: dict[str, str], cwd: Path = REPO) -> subprocess.CompletedProcess:
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def test_serve_dry_run_exports_a_model_folder_and_prints_the_bentoml_command(tmp_path):
    model_dir, _ = make_registered_model(tmp_path)
    env = serving_env(tmp_path / "bentoml")
    result = run([sys.executable, "-m", "serving", "serve", "--model", str(model_dir), "--port", "3999", "--dry-run"], env)
    assert result.returncode == 0, result.stderr
    assert "bentoml serve serving.service:SkinattnClassifier --host 127.0.0.1 --port 3999" in result.stdout
    tag = result.stderr.split("SKINATTN_MODEL_TAG=")[1].split(")")[0]
    assert tag.startswith("skinattn:local-")
    exported = next((tmp_path / "bentoml" / "models" / "skinattn").glob("local-*"))
    assert sorted(p.name for p in exported.iterdir() if p.suffix in {".json", ".safetensors"}) == [
        "model.json", "model.safetensors", "model_card.json"]  # the card is built at export for a model folder
    assert "**Not evaluated" in (exported / "MODEL_CARD.md").read_text()
    again = run([sys.executable, "-m", "serving", "serve", "--model", str(model_dir), "--dry-run"], env)
    assert again.returncode == 0 and tag in again.stderr  # same weights: the same BentoML model, not a new one


def test_serve_names_a_missing_registry_version(tmp_path):
    _, registry = make_registered_model(tmp_path)
    result = run([sys.executable, "-m", "serving", "serve", "--root", str(registry), "--model", "v9", "--dry-run"],
                 serving_env(tmp_path / "bentoml"))
    assert result.returncode == 2
    assert "no version v9" in result.stderr and "Traceback" not in result.stderr


@pytest.fixture(scope="module")
def built_bento(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, dict[str, str]]:
    """``bentoml build -f serving/bentofile.yaml`` of a freshly exported tiny model, once per module: the bento's
    folder, the model's tag and the environment (private ``BENTOML_HOME``) it was built with."""
    tmp_path = tmp_path_factory.mktemp("bento")
    _, registry = make_registered_model(tmp_path)
    env = serving_env(tmp_path / "bentoml")
    export = run([sys.executable, "-m", "serving", "export", "--model", "production", "--root", str(registry)], env)
    assert export.returncode == 0, export.stderr
    tag = export.stdout.strip()
    env["SKINATTN_MODEL_TAG"] = tag
    build = run([sys.executable, "-m", "bentoml", "build", "-f", "serving/bentofile.yaml", "."], env)
    assert build.returncode == 0, build.stdout + build.stderr
    (bento_dir,) = [p for p in (tmp_path / "bentoml" / "bentos" / "skinattn").iterdir() if p.name != "latest"]
    return bento_dir, tag, env


@pytest.mark.slow
def test_bentoml_build_packs_the_service_and_the_model(built_bento):
    bento_dir, tag, _ = built_bento
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


# What `bentoml containerize` does up to the engine call: copy the bento and its model to a temporary build
# context and regenerate the Dockerfile from bento.yaml (BentoML 1.4.40's construct_containerfile). Run where
# BentoML accepts the bento's Dockerfile.template (bentoml/BentoML#5566: below the cwd, no hidden folder).
_CONTAINERIZE_DOCKERFILE = """
import sys
import bentoml
from bentoml._internal.container import construct_containerfile
with construct_containerfile(bentoml.get(sys.argv[1]), enable_buildkit=False) as (_, dockerfile):
    print(open(dockerfile).read())
"""


@pytest.mark.slow
def test_bentoml_build_carries_the_manifest_env_into_the_bento_and_the_image(built_bento, tmp_path):
    """The bentofile's top-level ``envs:`` reach the bento (``bento.yaml``: ``envs`` and the ``docker.env`` the
    Dockerfile is regenerated from), the Dockerfile stored in the bento, and the Dockerfile that ``bentoml
    containerize`` builds: ENV lines equal to the Deployment's env, so a plain ``docker run`` of the image
    runs like the pod (usage tracking off, BentoML's home under /tmp)."""
    from infra.containers.serving_image import _containerize_dir, deployment_run_options

    bento_dir, _, env = built_bento
    expected = deployment_run_options().env  # ((name, value), ...) of infra/k8s/base/serving/deployment.yaml
    assert dict(expected)["BENTOML_DO_NOT_TRACK"] == "True"
    manifest = yaml.safe_load((bento_dir / "bento.yaml").read_text())
    assert [(e["name"], e["value"]) for e in manifest["envs"]] == list(expected)
    assert {e["stage"] for e in manifest["envs"]} == {"all"}  # run time, not build-time secrets
    assert manifest["docker"]["env"] == dict(expected)
    scratch = _containerize_dir(tmp_path / "work")
    regenerated = run([sys.executable, "-c", _CONTAINERIZE_DOCKERFILE, f"skinattn:{bento_dir.name}"],
                      {**env, "TMPDIR": str(scratch)}, cwd=scratch.parent)  # fmt: skip
    assert regenerated.returncode == 0, regenerated.stderr[-3000:]
    for dockerfile in ((bento_dir / "env" / "docker" / "Dockerfile").read_text(), regenerated.stdout):
        for name, value in expected:
            assert f"\nENV {name}={value}\n" in dockerfile
        assert "\nRUN " not in dockerfile  # nothing installed: the packages are the base image's
