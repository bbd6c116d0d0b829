"""The champion/challenger gate against a real registry and a real (untrained) production model."""

from __future__ import annotations

import json

import pytest
import torch

from skinattn.data.synthetic import make_sample_dataset
from skinattn.models import create_model, save_model
from skinattn.registry import KEEP, PROMOTE, Registry, compare_with_production
from skinattn.steps.data import ingest_step, prepare_step
from skinattn.steps.evaluation import evaluate_step
from skinattn.steps.registry import production_gate_step

pytestmark = pytest.mark.slow  # about 30 s: a data set, a model and two evaluations


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("gate")
    make_sample_dataset(root / "data", per_class=20, size=32, seed=0)
    ingest_step(str(root / "data"), "ham10000", root / "manifest")
    prepare_step(root / "manifest", root / "prepared", seed=0, cache_size=None)
    torch.manual_seed(0)
    champion = save_model(create_model("resnet10t", img_size=32), root / "champion")
    evaluate_step(champion, root / "prepared", root / "champion-eval", bootstrap=0)
    registry = Registry(str(root / "registry"))
    registry.promote(registry.register(champion, root / "champion-eval" / "metrics.json").version, "balanced_accuracy")
    return root


def _candidate(tmp_path, balanced_accuracy: float):
    """A candidate's evaluation metrics.json."""
    (tmp_path / "metrics.json").write_text(json.dumps({"balanced_accuracy": balanced_accuracy}))
    return tmp_path / "metrics.json"


def test_better_candidate_promotes_worse_keeps(setup, tmp_path):
    champion_value = json.loads((setup / "champion-eval" / "metrics.json").read_text())["balanced_accuracy"]
    registry, prepared, metric = Registry(str(setup / "registry")), setup / "prepared", "balanced_accuracy"
    verdict, reason = compare_with_production(registry, _candidate(tmp_path, 1.0), prepared, metric)
    assert verdict == PROMOTE and f"{champion_value:.6g}" in reason
    verdict, _ = compare_with_production(registry, _candidate(tmp_path, champion_value), prepared, metric)
    assert verdict == KEEP  # the re-evaluated champion ties: a tie keeps production
    verdict, _ = compare_with_production(registry, _candidate(tmp_path, 0.0), prepared, metric)
    assert verdict == KEEP


def test_unknown_metric_fails_instead_of_passing(setup, tmp_path):
    from skinattn.registry import RegistryError

    registry = Registry(str(setup / "registry"))
    with pytest.raises(RegistryError, match="no metric 'auc.nope'"):
        compare_with_production(registry, _candidate(tmp_path, 1.0), setup / "prepared", "auc.nope")
    # The pipeline's step: the candidate's evaluation folder, against a registry without production.
    with pytest.raises(RegistryError, match="no metric"):
        production_gate_step(_candidate(tmp_path, 1.0).parent, setup / "prepared", str(tmp_path / "empty"), "auc.nope")


def test_the_gate_computes_the_champions_numbers_only(setup, tmp_path, monkeypatch):
    """Issue 11: the gate used to write the champion's whole evaluation (predictions, figures, Grad-CAM
    overlays, report) only to read two numbers. Now no explanation or report is made, and the numbers equal
    those of the full evaluation."""
    import skinattn.evaluation.run as run

    def forbidden(*args, **kwargs):
        raise AssertionError("the gate must not explain or render anything")

    monkeypatch.setattr(run, "Explainer", forbidden)
    monkeypatch.setattr(run, "render_report", forbidden)
    champion_value = json.loads((setup / "champion-eval" / "metrics.json").read_text())["balanced_accuracy"]
    verdict, reason = compare_with_production(Registry(str(setup / "registry")), _candidate(tmp_path, 1.0),
                                              setup / "prepared", "balanced_accuracy")  # fmt: skip
    assert verdict == PROMOTE and f"production v1 balanced_accuracy={champion_value:.6g}" in reason


def test_the_gate_can_decide_on_the_external_test_set(setup, tmp_path):
    """Issue 14: with source="external" the gate reads the candidate's external metric and re-evaluates
    production on the same external rows. A candidate better on the internal split but worse on the
    external set is promoted by one gate and kept by the other."""
    from _external_collection import make_isic2017_external

    from skinattn.registry import RegistryError

    folder, _ = make_isic2017_external(tmp_path / "external", per_class=3)
    evaluation = tmp_path / "candidate-eval"
    # The production model's own evaluation, with the external set: the numbers the gate must reproduce.
    evaluate_step(setup / "champion", setup / "prepared", evaluation, bootstrap=0,
                  external_test_uri=str(folder), external_test_format="isic2017")  # fmt: skip
    metrics = json.loads((evaluation / "metrics.json").read_text())
    internal, external = metrics["balanced_accuracy"], metrics["external"]["balanced_accuracy"]
    metrics["balanced_accuracy"] = internal + 0.1  # better than production on the internal test split
    metrics["external"]["balanced_accuracy"] = external - 0.1  # worse on the external test set
    (evaluation / "metrics.json").write_text(json.dumps(metrics))

    registry_root, metric = str(setup / "registry"), "balanced_accuracy"
    assert production_gate_step(evaluation, setup / "prepared", registry_root, metric) == PROMOTE
    verdict, reason = compare_with_production(Registry(registry_root), evaluation / "metrics.json", setup / "prepared",
                                              metric, source="external")  # fmt: skip
    assert verdict == KEEP
    assert f"production v1 balanced_accuracy={external:.6g} on the same external test set" in reason
    assert production_gate_step(evaluation, setup / "prepared", registry_root, metric, "external") == KEEP

    # An evaluation without an external test set cannot be gated on one.
    with pytest.raises(RegistryError, match="compare on the external test set, but this evaluation has none"):
        compare_with_production(Registry(registry_root), setup / "champion-eval" / "metrics.json", setup / "prepared",
                                metric, source="external")  # fmt: skip
