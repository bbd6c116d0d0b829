"""``make e2e``: build every image and run the product inside them, end to end, on this machine.

Steps (each timed; a failure names its step, and the containers this run started are removed):

engine         Docker if its daemon answers, else Podman (installed with apt-get when missing), configured
               by infra/containers/containers.conf; a Docker-compatible API socket for kfp.local.
image-cpu      the CPU component image (images.py): the Dockerfile's pinned official base, or a stand-in
image-cuda     built from Debian packages where it cannot be pulled (said so in the output); the packages from
               a wheelhouse resolved on the host; ``skinattn --version`` must run in it as a non-root user.
               The CUDA runtime itself can only be checked on a GPU machine, not here.
s3             an S3 server (moto) on 127.0.0.1 and the engine's Docker-compatible API socket, with a synthetic HAM10000-layout data set and a small
               ISIC-archive-shaped prefix of real images (from $SKINATTN_REAL_DATA when set).
training       the training pipeline with kfp.local.DockerRunner: each component in its image (train in the
               CUDA image, on the CPU; the others in the CPU image) as the image's non-root user, data and
               registry on S3, with the environment a cluster pod gets (the S3 ConfigMap and Secret keys of
               infra/cluster.env); v1 must be registered and promoted.
scoring        the batch-scoring pipeline the same way over the archive prefix in 2 shards; every image must
               be scored exactly once.
serving-image  the bento of the registered model, containerized on the CPU image (serving_image.py).
serving        that image started as infra/k8s/base/serving/deployment.yaml runs it (user, read-only root,
               /tmp, environment, capabilities, all read from the manifest); /readyz, a real JPEG classified,
               a bad upload answered 4xx.

Images are tagged ``localhost/skinattn:e2e`` etc.; the engine's image store and layer cache are kept between
runs (a rerun rebuilds only what changed). Timings go to the output and to ``build/e2e/e2e-report.json``.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import logging
import os
import shutil
import signal
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from infra.containers import engine as engines, images
# Every container a run starts carries this label key, the serving check's too.
from infra.containers.serving_image import CONTAINER_LABEL_KEY as LABEL_KEY, free_port

REPO_ROOT = Path(__file__).resolve().parents[2]
DEPLOYMENT = REPO_ROOT / "infra" / "k8s" / "base" / "serving" / "deployment.yaml"
BUCKET = "skinattn-e2e"
IMAGES = {
    "cpu": "localhost/skinattn:e2e",
    "cuda": "localhost/skinattn:e2e-cuda",
    "serving": "localhost/skinattn-serving:e2e",
}
# Small enough for 2 CPU cores: resnet10t at 32 px, 2 epochs on 12 synthetic images per class.
TRAINING = {
    "data_format": "ham10000", "arch": "resnet10t", "soft_attention": True, "image_size": 32, "epochs": 2,
    "batch_size": 16, "lr": 0.001, "seed": 0, "gpus": 0, "promotion_metric": "balanced_accuracy", "bootstrap": 50,
}  # fmt: skip
PER_CLASS = 12
# A first build: two component images of ~7 GB each (torch with CUDA libraries), the serving image, their build
# layers and the wheelhouse. A rebuild over the images of an earlier run reuses their dependency layers (the
# project's source layers are small) and needs room for the wheelhouse (~3 GB), the run's outputs (~3 GB) and a
# margin; images a rebuild replaces are removed (Engine.build), so repeated runs do not fill the disk.
FIRST_BUILD_DISK_GB = 30
REBUILD_DISK_GB = 12
ARCHIVE_IMAGES = 24


class StepFailed(RuntimeError):
    def __init__(self, step: str, cause: BaseException):
        super().__init__(f"step '{step}' failed: {type(cause).__name__}: {cause}")
        self.step = step


@dataclass
class Report:
    steps: list[dict[str, Any]] = field(default_factory=list)
    facts: dict[str, Any] = field(default_factory=dict)

    @contextlib.contextmanager
    def step(self, name: str) -> Iterator[None]:
        print(f"\n=== e2e: {name}", flush=True)
        start = time.monotonic()
        ok = False
        try:
            yield
            ok = True
        except StepFailed:
            raise
        except BaseException as exc:  # noqa: BLE001 - any failure is reported with the step's name
            raise StepFailed(name, exc) from exc
        finally:
            seconds = round(time.monotonic() - start, 1)
            self.steps.append({"step": name, "seconds": seconds, "ok": ok})
            print(f"=== e2e: {name} {'ok' if ok else 'FAILED'} in {seconds:.1f} s", flush=True)

    def table(self) -> str:
        lines = [f"{'step':<16} {'seconds':>8}  result"]
        lines += [f"{s['step']:<16} {s['seconds']:>8.1f}  {'ok' if s['ok'] else 'FAILED'}" for s in self.steps]
        lines.append(f"{'total':<16} {sum(s['seconds'] for s in self.steps):>8.1f}")
        return "\n".join(lines)


# ---- S3 ---------------------------------------------------------------------------------------------------


@contextlib.contextmanager
def s3_server() -> Iterator[dict[str, str]]:
    """An S3-compatible server (moto) on 127.0.0.1; yields the variables the cluster's S3 ConfigMap and
    Secret give a pod (infra/cluster.env), with this server's values."""
    from moto.server import ThreadedMotoServer

    from skinattn_components.cluster import s3_settings

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # not one line per request
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=free_port(), verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    values = {
        "AWS_ENDPOINT_URL": f"http://{host}:{port}", "AWS_REGION": "us-east-1", "SKINATTN_S3_BUCKET": BUCKET,
        "AWS_ACCESS_KEY_ID": "e2e-access-key", "AWS_SECRET_ACCESS_KEY": "e2e-secret-key",
    }  # fmt: skip
    settings = s3_settings()
    keys = [*settings.config_map_keys, *settings.secret_keys]
    missing = [key for key in keys if key not in values]
    if missing:
        raise RuntimeError(f"infra/cluster.env names S3 keys the e2e run does not know how to fill: {missing}")
    try:
        yield {key: values[key] for key in keys}
    finally:
        server.stop()


def upload_folder(client: Any, folder: Path, prefix: str) -> int:
    count = 0
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            client.upload_file(str(path), BUCKET, f"{prefix}/{path.relative_to(folder).as_posix()}")
            count += 1
    return count


def isic_archive(out: Path, count: int) -> list[str]:
    """A folder in the ``isic image download`` layout: real HAM10000 JPEGs from $SKINATTN_REAL_DATA (their
    names are ISIC ids) where available, else synthetic ones; returns the isic ids."""
    out.mkdir(parents=True, exist_ok=True)
    real = Path(os.environ.get("SKINATTN_REAL_DATA", "")) / "ham10000-224"
    sources = sorted(real.rglob("ISIC_*.jpg"))[:count] if real.is_dir() else []
    if sources:
        print(f"archive: {len(sources)} real images from {real}")
        for source in sources:
            shutil.copyfile(source, out / source.name)
    else:
        from skinattn.data.synthetic import make_sample_dataset

        print("archive: SKINATTN_REAL_DATA unset, using synthetic images")
        sample = out.parent / "archive-synthetic"
        make_sample_dataset(sample, per_class=max(1, count // 7 + 1), size=64, seed=1, overwrite=True)
        for number, source in enumerate(sorted(sample.glob("*.jpg"))[:count]):
            shutil.copyfile(source, out / f"ISIC_{9_200_000 + number:07d}.jpg")
    ids = sorted(p.stem for p in out.glob("ISIC_*.jpg"))
    with (out / "metadata.csv").open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["isic_id", "attribution", "copyright_license"])
        writer.writerows([image_id, "HAM10000 (Tschandl et al. 2018)", "CC-BY-NC"] for image_id in ids)
    return ids


# ---- pipelines in containers ----------------------------------------------------------------------------


def docker_runner(env: dict[str, str], label: str) -> Any:
    """kfp.local.DockerRunner as a cluster runs the components: the image's own (non-root) user, the S3
    environment, host networking to reach the S3 server on 127.0.0.1, explicit ulimits (Podman via its API),
    and a label so that cleanup finds every container of this run."""
    import docker
    from kfp import local

    ulimits = [docker.types.Ulimit(name=name, soft=soft, hard=hard) for name, soft, hard in engines.default_ulimits()]
    key, _, value = label.partition("=")
    return local.DockerRunner(environment=env, network_mode="host", ulimits=ulimits, labels={key: value})


def pipeline_root(work: Path, name: str) -> Path:
    """A pipeline root the containers' non-root user can write (KFP mounts it at the same path)."""
    root = work / name
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    root.chmod(0o777)
    return root


def task_output(run_dir: Path, task: str, output: str) -> Path:
    """The output folder of ``task``; kfp.local suffixes a task that occurs in two branches (``-2``)."""
    matches = sorted(run_dir.glob(f"**/{task}*/{output}"))
    if not matches:
        raise RuntimeError(f"no output {task}/{output} under {run_dir}")
    return matches[-1]


def run_training(work: Path, env: dict[str, str], label: str) -> dict[str, Any]:
    from skinattn_pipelines.local import run_local
    from skinattn.registry import Registry

    params = TRAINING | {"data_uri": f"s3://{BUCKET}/data/ham10000", "registry_root": f"s3://{BUCKET}/registry"}
    print(f"training pipeline: {json.dumps(params)}", flush=True)
    run_dir = run_local("training", params, pipeline_root(work, "kfp-training"), runner=docker_runner(env, label))
    production = Registry(params["registry_root"]).production()
    if production is None:
        raise RuntimeError(f"the run finished but {params['registry_root']} has no production version")
    print(f"registered and promoted {production.version} (run folder {run_dir})")
    return {"run_dir": str(run_dir), "version": production.version}


def run_scoring(work: Path, env: dict[str, str], label: str, ids: list[str]) -> dict[str, Any]:
    import pandas as pd

    from skinattn_pipelines.local import run_local

    params = {
        "source_uri": f"s3://{BUCKET}/archives/isic", "model": "production", "registry_root": f"s3://{BUCKET}/registry",
        "num_shards": 2, "batch_size": 8, "workers": 1, "gpus_per_shard": 0, "output_format": "parquet",
        "output_uri": f"s3://{BUCKET}/scored/e2e", "bootstrap": 0,
    }  # fmt: skip
    print(f"batch-scoring pipeline: {json.dumps(params)}", flush=True)
    run_dir = run_local("batch_scoring", params, pipeline_root(work, "kfp-scoring"), runner=docker_runner(env, label))
    predictions = pd.read_parquet(task_output(run_dir, "merge-scores", "predictions") / "predictions.parquet")
    scored = predictions["image_id"].astype(str).tolist()
    duplicates = sorted({i for i in scored if scored.count(i) > 1})
    missing, extra = sorted(set(ids) - set(scored)), sorted(set(scored) - set(ids))
    if duplicates or missing or extra or len(scored) != len(ids):
        raise RuntimeError(f"expected each of {len(ids)} images scored once; got {len(scored)} rows, duplicated "
                           f"{duplicates[:5]}, missing {missing[:5]}, unexpected {extra[:5]}")  # fmt: skip
    print(f"every one of the {len(ids)} archive images was scored exactly once")
    return {"run_dir": str(run_dir), "scored": len(scored)}


# ---- the run ----------------------------------------------------------------------------------------------


def needed_disk_gb(engine: engines.Engine) -> int:
    """Free space the run needs: less when every image is already there from an earlier run (its layers are reused)."""
    return REBUILD_DISK_GB if all(engine.image_exists(tag) for tag in IMAGES.values()) else FIRST_BUILD_DISK_GB


def check_disk(needed_gb: int, *folders: Path) -> None:
    """Fail early, with the remedy, rather than minutes into a build with 'no space left on device'."""
    for folder in folders:
        free_gb = shutil.disk_usage(folder).free / 1e9
        print(f"{folder}: {free_gb:.0f} GB free (needs about {needed_gb} GB)")
        if free_gb < needed_gb:
            raise RuntimeError(f"{folder} has {free_gb:.0f} GB free; the images and their build need about "
                               f"{needed_gb} GB (old images: 'podman image prune' / 'docker image prune')")  # fmt: skip


def build_images(engine: engines.Engine, report: Report, work: Path, ca_bundle: Path | None) -> None:
    """The two component images, on stand-in bases where the official ones cannot be pulled. torch comes
    from pip's own configuration (on these machines PyPI's CUDA build, as PyTorch's CPU index is unreachable),
    so one wheelhouse serves both images."""
    settings = images.BuildSettings(engine, work, standin_bases=True, torch_index_url="", ca_bundle=ca_bundle)
    wheels: dict[tuple[str, str], Path] = {}
    for kind in ("cpu", "cuda"):
        with report.step(f"image-{kind}"):
            report.facts[f"image-{kind}"] = images.build_component_image(settings, kind, IMAGES[kind], wheels)


def run(args: argparse.Namespace) -> int:
    report = Report()
    work = args.work.resolve()
    work.mkdir(parents=True, exist_ok=True)
    label = f"{LABEL_KEY}={uuid.uuid4().hex[:12]}"
    engine = None
    try:
        with report.step("engine"):
            engine = engines.find_engine(args.engine, install=True)
            print(f"engine: {engine.name}" + (f" (CONTAINERS_CONF={engines.CONTAINERS_CONF})" if engine.name == "podman" else ""))
            check_disk(needed_disk_gb(engine), engine.storage_root(), work)
            # Containers of an earlier run that was killed (SIGKILL skips cleanup) would hold ports and memory.
            engines.remove_containers(engine, LABEL_KEY)
        # The components read their image names when first imported: point them at the images built here.
        os.environ["SKINATTN_IMAGE"] = IMAGES["cpu"]
        os.environ["SKINATTN_GPU_IMAGE"] = IMAGES["cuda"]
        build_images(engine, report, work, args.ca_bundle)
        with contextlib.ExitStack() as services:
            with report.step("s3"):
                import boto3

                from skinattn.data.synthetic import make_sample_dataset

                s3_env = services.enter_context(s3_server())
                os.environ.update(s3_env)  # this process reads the registry and uploads the data too
                os.environ["DOCKER_HOST"] = services.enter_context(engines.docker_api(engine))
                client = boto3.client("s3")
                client.create_bucket(Bucket=BUCKET)
                data = work / "data"
                make_sample_dataset(data, per_class=PER_CLASS, size=48, seed=0, overwrite=True)
                print(f"uploaded {upload_folder(client, data, 'data/ham10000')} files to s3://{BUCKET}/data/ham10000")
                archive = work / "archive"
                shutil.rmtree(archive, ignore_errors=True)
                ids = isic_archive(archive, ARCHIVE_IMAGES)
                print(f"uploaded {upload_folder(client, archive, 'archives/isic')} files to s3://{BUCKET}/archives/isic")
            with report.step("training"):
                report.facts["training"] = run_training(work, s3_env, label)
            with report.step("scoring"):
                report.facts["scoring"] = run_scoring(work, s3_env, label, ids)
            with report.step("serving-image"):
                from infra.containers.serving_image import build_serving_image
                from skinattn.registry import Registry

                model_dir = Registry(f"s3://{BUCKET}/registry").download("production", work / "serving-model")
                build_serving_image(engine, model_dir=model_dir, base_image=IMAGES["cpu"], tag=IMAGES["serving"],
                                    workdir=work / "serving")  # fmt: skip
                report.facts["image-serving"] = {"tag": IMAGES["serving"], "bytes": engine.image_size(IMAGES["serving"])}
            with report.step("serving"):
                from infra.containers.serving_image import check_serving_container

                jpeg = next(iter(sorted(archive.glob("ISIC_*.jpg"))))
                report.facts["serving"] = check_serving_container(engine, IMAGES["serving"], jpeg=jpeg,
                                                                  deployment_yaml=DEPLOYMENT)  # fmt: skip
    except StepFailed as failure:
        print(f"\ne2e FAILED: {failure}", file=sys.stderr)
        return finish(report, work, ok=False)
    finally:
        if engine is not None:
            engines.remove_containers(engine, label)
    return finish(report, work, ok=True)


def finish(report: Report, work: Path, ok: bool) -> int:
    from skinattn.fileio import write_json

    out = work / "e2e-report.json"
    write_json(out, json.loads(json.dumps({"ok": ok, "steps": report.steps, "facts": report.facts}, default=str)))
    print(f"\n{report.table()}\n\ne2e {'passed' if ok else 'FAILED'}; report: {out}", flush=True)
    return 0 if ok else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m infra.containers.e2e",
        description="Build the CPU, CUDA and serving images and run the training pipeline, the batch-scoring "
        "pipeline (kfp.local.DockerRunner) and the serving container end to end on this machine. Installs "
        "Podman with apt-get when no container engine is present.",
    )
    parser.add_argument("--engine", choices=engines.ENGINES, help="container engine (default: $CONTAINER_ENGINE, "
                        "else Docker if its daemon answers, else Podman)")  # fmt: skip
    parser.add_argument("--work", type=Path, default=REPO_ROOT / "build" / "e2e",
                        help="working folder: wheelhouse, data, pipeline roots, report (default build/e2e)")  # fmt: skip
    parser.add_argument("--ca-bundle", type=Path, default=None,
                        help="extra CA bundle handed to the builds as the secret 'ca-bundle' (default: "
                        "$SKINATTN_CA_BUNDLE, else $SSL_CERT_FILE when that file exists)")  # fmt: skip
    args = parser.parse_args(argv)
    # A CI timeout or Ctrl-C sends SIGTERM/SIGINT: unwind, so that the cleanup (containers, the Podman API
    # service, the S3 server) runs.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    if args.ca_bundle is None:
        default = os.environ.get("SKINATTN_CA_BUNDLE") or os.environ.get("SSL_CERT_FILE")
        args.ca_bundle = Path(default) if default and Path(default).is_file() else None
    elif not args.ca_bundle.is_file():
        parser.error(f"--ca-bundle {args.ca_bundle}: no such file")
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
