"""``skinattn pipeline compile|run|submit|upload|schedule``: the Kubeflow pipelines from the command line.

The pipelines live in the top-level ``pipelines/`` and ``components/`` packages of the repository, which
read ``infra/image.env`` and ``infra/cluster.env`` when they are compiled: these commands work from a
checkout (an editable install), not from a wheel. kfp is imported inside the handlers only.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from skinattn.errors import SkinattnError

NEEDS_CHECKOUT = (
    "Needs the repository checkout (editable install): pipelines/ and components/ read infra/image.env and "
    "infra/cluster.env when compiling."
)
PIPELINE_NAMES = ("training", "ablation", "batch_scoring")  # the names of pipelines.PIPELINES
PARAM_HELP = (
    "pipeline parameter as NAME=VALUE, parsed as YAML (epochs=2, soft_attention=false, "
    "'configs=[{arch: resnet18, soft_attention: true}]'); repeatable. See docs/pipelines.md for the list"
)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "pipeline",
        help="compile, run locally, submit, upload and schedule the Kubeflow pipelines",
        description="The training, ablation and batch_scoring pipelines on Kubeflow Pipelines (or kfp.local). "
        + NEEDS_CHECKOUT,
    )
    sub = parser.add_subparsers(dest="pipeline_command", metavar="ACTION", required=True)

    compile_parser = sub.add_parser("compile", help="write the YAML package of every pipeline into a folder")
    compile_parser.add_argument("--out", required=True, type=Path, help="folder for <pipeline>.yaml files")
    compile_parser.set_defaults(handler=_compile)

    run = sub.add_parser(
        "run",
        help="run a pipeline with kfp.local in this environment (no cluster)",
        description="Runs every step as a subprocess of this Python (kfp.local.SubprocessRunner, use_venv=False); "
        "GPU and Kubernetes settings are ignored. " + NEEDS_CHECKOUT,
    )
    run.add_argument("--local", action="store_true", required=True, help="run with kfp.local (the only mode; see 'submit')")
    _pipeline_and_params(run)
    run.add_argument("--pipeline-root", type=Path, default=Path("kfp-local"), help="where outputs go (default ./kfp-local)")
    run.set_defaults(handler=_run_local)

    submit = sub.add_parser("submit", help="start one run on a Kubeflow Pipelines backend")
    _remote_options(submit)
    _pipeline_and_params(submit)
    submit.add_argument("--experiment", required=True, help="experiment to file the run under (created if missing)")
    submit.add_argument("--run-name", help="run name shown in the UI (default: KFP's)")
    submit.set_defaults(handler=_submit)

    upload = sub.add_parser("upload", help="upload a pipeline (or a new version of it) for runs started from the UI")
    _remote_options(upload)
    upload.add_argument("--pipeline", choices=PIPELINE_NAMES, default="training", help="which pipeline (default training)")
    upload.add_argument(
        "--version-name",
        help="name of the new version when the pipeline exists (default <pipeline>-<UTC timestamp>); "
        "the first upload's version is named by the backend",
    )
    upload.set_defaults(handler=_upload)

    schedule = sub.add_parser(
        "schedule",
        help="upload a new version and create a recurring run of it",
        description="Cron format (KFP): 6 fields, seconds first: SECOND MINUTE HOUR DAY-OF-MONTH MONTH "
        "DAY-OF-WEEK; '0 0 2 * * *' is every day at 02:00:00. " + NEEDS_CHECKOUT,
    )
    _remote_options(schedule)
    _pipeline_and_params(schedule)
    schedule.add_argument("--cron", required=True, help="6-field cron, seconds first, e.g. '0 0 2 * * *' (daily 02:00)")
    schedule.add_argument("--experiment", default="skinattn-scheduled", help="experiment (default skinattn-scheduled)")
    schedule.add_argument("--job-name", help="recurring run name (default <pipeline>-nightly)")
    schedule.add_argument("--max-concurrency", type=int, default=1, help="runs of this schedule at once (default 1)")
    schedule.add_argument("--catchup", action="store_true", help="after downtime, start every missed run (default: no)")
    schedule.set_defaults(handler=_schedule)


def _pipeline_and_params(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--pipeline", choices=PIPELINE_NAMES, default="training", help="which pipeline (default training)")
    parser.add_argument("--param", action="append", default=[], metavar="NAME=VALUE", help=PARAM_HELP)


def _remote_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", required=True, help="KFP API endpoint, e.g. http://localhost:8080 (port-forwarded ml-pipeline-ui)")
    parser.add_argument("--namespace", help="Kubernetes namespace (multi-user Kubeflow only)")
    parser.add_argument(
        "--service-account",
        help="service account of the run's pods (default: SKINATTN_PIPELINE_SERVICE_ACCOUNT of infra/cluster.env)",
    )
    parser.add_argument(
        "--pipeline-root",
        metavar="URI",
        help="where the runs' artifacts go, s3://bucket/prefix (default: SKINATTN_PIPELINE_ROOT of "
        "infra/cluster.env, also the cluster's default through the kfp-launcher ConfigMap of infra/k8s)",
    )


def _import_pipelines():
    """The repository's pipelines package, or a clear error when it cannot be imported."""
    try:
        import skinattn_pipelines as pipelines
        from skinattn_components.envfile import ConventionFileError
    except ImportError as exc:
        raise SkinattnError(f"cannot import the pipelines ({exc}). {NEEDS_CHECKOUT}") from None
    return pipelines, ConventionFileError


def _guard(action):
    """Run ``action`` turning the pipeline layer's input errors into one-line SkinattnErrors."""
    pipelines, convention_error = _import_pipelines()
    from skinattn_pipelines.remote import describe_remote_error, remote_errors

    try:
        return action()
    except (pipelines.PipelineError, convention_error) as exc:
        raise SkinattnError(str(exc)) from None
    except remote_errors() as exc:
        raise SkinattnError(f"the Kubeflow Pipelines backend refused: {describe_remote_error(exc)}") from None


def _compile(args: argparse.Namespace) -> int:
    def action() -> int:
        from skinattn_pipelines import PIPELINES, compile_pipeline

        args.out.mkdir(parents=True, exist_ok=True)
        for name in PIPELINES:
            print(compile_pipeline(name, str(args.out / f"{name}.yaml")))
        return 0

    return _guard(action)


def _arguments(args: argparse.Namespace) -> dict:
    """The run's typed ``--param`` arguments, refused (every bad one named, exit 2) before anything is
    compiled, sent or run: skinattn_pipelines.validate, the rules the pipelines' first step applies too.
    Local paths are checked for local runs only: on a cluster a path names the pods' file system."""
    from skinattn_pipelines.validate import checked_arguments

    local = args.pipeline_command == "run"
    return checked_arguments(args.pipeline, args.param, reach="client", local_paths=local)


def _run_local(args: argparse.Namespace) -> int:
    def action() -> int:
        from skinattn_pipelines.local import run_local

        run_dir = run_local(args.pipeline, _arguments(args), args.pipeline_root)
        print(f"pipeline {args.pipeline} finished; outputs in {run_dir}")
        return 0

    return _guard(action)


def _service_account(args: argparse.Namespace) -> str:
    from skinattn_components.cluster import pipeline_service_account

    return args.service_account or pipeline_service_account()


def _submit(args: argparse.Namespace) -> int:
    def action() -> int:
        from skinattn_pipelines import compile_pipeline
        from skinattn_pipelines import remote

        arguments = _arguments(args)
        pipeline_root = remote.resolve_pipeline_root(args.pipeline_root)
        with tempfile.TemporaryDirectory(prefix="skinattn-pipeline-") as scratch:
            package = compile_pipeline(args.pipeline, str(Path(scratch) / f"{args.pipeline}.yaml"))
            client = remote.connect(args.host, args.namespace)
            run_id = remote.submit(
                client, package, arguments, experiment=args.experiment, run_name=args.run_name,
                service_account=_service_account(args), namespace=args.namespace, pipeline_root=pipeline_root,
            )  # fmt: skip
        print(f"submitted run {run_id} to {args.host} (experiment {args.experiment})")
        return 0

    return _guard(action)


def _upload_version(args: argparse.Namespace, scratch: str) -> tuple[str, str]:
    from skinattn_pipelines import compile_pipeline, load_pipeline
    from skinattn_pipelines import remote

    pipeline = load_pipeline(args.pipeline)
    name = pipeline.name
    # Compiled into the version (the upload API takes no pipeline root): runs started from the UI use it.
    pipeline_root = remote.resolve_pipeline_root(args.pipeline_root)
    package = compile_pipeline(args.pipeline, str(Path(scratch) / f"{args.pipeline}.yaml"), pipeline_root)
    client = remote.connect(args.host, args.namespace)
    version_name = getattr(args, "version_name", None) or remote.default_version_name(name)
    pipeline_id, version_id, version_name = remote.upload(
        client, package, name, version_name, pipeline.description or ""
    )
    print(f"uploaded {name}: pipeline {pipeline_id}, version {version_id} ({version_name})")
    return pipeline_id, version_id


def _upload(args: argparse.Namespace) -> int:
    def action() -> int:
        from skinattn_pipelines.validate import checked_arguments

        checked_arguments(args.pipeline, [], reach="offline")  # the defaults a run form starts from
        with tempfile.TemporaryDirectory(prefix="skinattn-pipeline-") as scratch:
            _upload_version(args, scratch)
        return 0

    return _guard(action)


def _schedule(args: argparse.Namespace) -> int:
    def action() -> int:
        from skinattn_pipelines import remote
        from skinattn_pipelines.cron import validate_cron

        cron = validate_cron(args.cron)  # before anything is uploaded
        arguments = _arguments(args)
        pipeline_root = remote.resolve_pipeline_root(args.pipeline_root)
        with tempfile.TemporaryDirectory(prefix="skinattn-pipeline-") as scratch:
            pipeline_id, version_id = _upload_version(args, scratch)
        client = remote.connect(args.host, args.namespace)
        job_name = args.job_name or f"{args.pipeline}-nightly"
        recurring_id = remote.schedule(
            client, experiment=args.experiment, namespace=args.namespace, pipeline_id=pipeline_id,
            version_id=version_id, job_name=job_name, cron=cron, arguments=arguments,
            service_account=_service_account(args), max_concurrency=args.max_concurrency, catchup=args.catchup,
            pipeline_root=pipeline_root,
        )  # fmt: skip
        print(f"recurring run {recurring_id} ({job_name}): '{cron}' in experiment {args.experiment}")
        return 0

    return _guard(action)
