"""Metric files, metric directions and comparisons (no storage involved)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from skinattn.registry import RegistryError, compare, flatten_metrics, load_metrics, metric_direction


def test_nested_metrics_are_flattened_to_dotted_names() -> None:
    flat = flatten_metrics({"accuracy": 0.9, "auc": {"weighted": 0.97, "per_class": {"mel": 0.8}}, "n": 10,
                            "confusion": [[1, 2]], "arch": "resnet", "ok": True})
    assert flat == {"accuracy": 0.9, "auc.weighted": 0.97, "auc.per_class.mel": 0.8, "n": 10.0}


def test_non_finite_values_are_kept_as_none() -> None:
    assert flatten_metrics({"auc": math.nan, "loss": math.inf, "accuracy": 0.5}) == {"auc": None, "loss": None, "accuracy": 0.5}


@pytest.mark.parametrize("data", [{}, {"name": "x"}, {"cm": [[1]]}])
def test_metrics_without_numbers_are_refused(data: dict) -> None:
    with pytest.raises(RegistryError, match="no numeric metric"):
        flatten_metrics(data, "m.json")


@pytest.mark.parametrize(
    ("name", "direction"),
    [
        ("accuracy", "higher"), ("auc", "higher"), ("auc.weighted", "higher"), ("precision.macro", "higher"),
        ("balanced_accuracy", "higher"), ("weighted_auc", "higher"), ("f1", "higher"),
        ("loss", "lower"), ("val_loss", "lower"), ("test.loss", "lower"), ("error_rate", "lower"), ("ece", "lower"),
    ],
)
def test_direction_is_read_from_the_metric_name(name: str, direction: str) -> None:
    assert metric_direction(name) == direction


def test_an_unknown_metric_name_needs_an_explicit_direction() -> None:
    with pytest.raises(RegistryError, match="cannot tell whether higher or lower"):
        metric_direction("throughput")
    assert compare({"throughput": 2.0}, {"throughput": 1.0}, "throughput", "higher").better


@pytest.mark.parametrize(
    ("metric", "candidate", "champion", "better"),
    [
        ("auc", 0.91, 0.90, True), ("auc", 0.90, 0.90, False), ("auc", 0.89, 0.90, False),
        ("loss", 0.4, 0.5, True), ("loss", 0.5, 0.5, False), ("loss", 0.6, 0.5, False),
    ],
)
def test_comparison_is_direction_aware_and_ties_lose(metric: str, candidate: float, champion: float, better: bool) -> None:
    assert compare({metric: candidate}, {metric: champion}, metric).better is better


def test_without_a_champion_the_candidate_wins_but_needs_the_metric() -> None:
    assert compare({"auc": 0.1}, None, "auc").better
    with pytest.raises(RegistryError, match="has no metric 'auc'"):
        compare({"accuracy": 0.9}, None, "auc")
    with pytest.raises(RegistryError, match="not a finite number"):
        compare({"auc": None}, None, "auc")


def test_load_metrics_names_the_file_in_errors(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("{not json", encoding="utf-8")
    with pytest.raises(RegistryError, match="bad.json: metrics file is not valid JSON"):
        load_metrics(bad)
    with pytest.raises(RegistryError, match="missing.json: metrics file not found"):
        load_metrics(tmp_path / "missing.json")
    listed = tmp_path / "list.json"
    listed.write_text("[0.9]", encoding="utf-8")
    with pytest.raises(RegistryError, match="list.json: metrics must be a JSON object"):
        load_metrics(listed)
