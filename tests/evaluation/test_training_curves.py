"""Training curves: the figure drawn from a history, the history's reader, the standalone curves page, and the
curves section of report.html (drawn when the model's history is found, a plain note when it is not)."""

from __future__ import annotations

import base64
import io
import json
import math
import re
import shutil
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from skinattn.errors import DataError
from skinattn.evaluation import EvaluationSettings, evaluate
from skinattn.evaluation.curves import render_curves_page, write_curves_page
from skinattn.evaluation.figures import best_epoch, training_curves_figure, training_curves_png
from skinattn.evaluation.history import HISTORY_FILE, find_history, read_history
from skinattn.training import trainer

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def synthetic_history(epochs: int = 6, lr_drop_at: int | None = None) -> list[dict[str, Any]]:
    """Records shaped like the trainer's history.jsonl lines; epoch 2 has an undefined macro AUC."""
    history = []
    for e in range(1, epochs + 1):
        history.append({
            "epoch": e, "train_loss": 2.0 / e, "train_accuracy": 0.1 * e, "val_loss": 2.2 / e,
            "accuracy": 0.09 * e, "balanced_accuracy": 0.08 * e, "macro_auc": math.nan if e == 2 else 0.5 + 0.05 * e,
            "lr": 0.01 if lr_drop_at is None or e < lr_drop_at else 0.005,
            "images_per_second": 100.0, "improved": e in (1, 3, 5), "bad_epochs": 0,
        })  # fmt: skip
    return history


def write_history(path: Path, history: list[dict[str, Any]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in history), encoding="utf-8")
    return path


def _labels(axes) -> list[str]:  # noqa: ANN001
    return [line.get_label() for line in axes.get_lines()]


def test_figure_draws_losses_and_validation_metrics_per_epoch_with_the_best_epoch_marked():
    history = synthetic_history()
    figure = training_curves_figure(history, monitor="val_loss")
    loss, rates = figure.axes
    marker = "best epoch 5 (val_loss)"
    assert _labels(loss) == ["train loss", "validation loss", marker]
    assert _labels(rates) == ["train accuracy", "val accuracy", "val balanced accuracy", "val macro AUC", marker]
    for axes in (loss, rates):
        for line in axes.get_lines()[:-1]:
            assert list(line.get_xdata()) == [1, 2, 3, 4, 5, 6]
        assert list(axes.get_lines()[-1].get_xdata()) == [5, 5]  # axvline at the last improved epoch
    val_loss = loss.get_lines()[1].get_ydata()
    assert list(val_loss) == pytest.approx([r["val_loss"] for r in history])
    assert math.isnan(rates.get_lines()[3].get_ydata()[1]), "an undefined AUC is a gap, not a number"
    assert rates.get_ylim() == (0.0, 1.02)


def test_learning_rate_panel_only_when_a_schedule_changed_it():
    assert len(training_curves_figure(synthetic_history()).axes) == 2
    figure = training_curves_figure(synthetic_history(lr_drop_at=4))
    assert len(figure.axes) == 3
    assert _labels(figure.axes[2])[0] == "learning rate"
    assert list(figure.axes[2].get_lines()[0].get_ydata()) == [0.01] * 3 + [0.005] * 3


def test_fields_a_history_lacks_are_left_out_and_no_improvement_means_no_marker():
    history = [{"epoch": e, "train_loss": 1.0 / e, "val_loss": 1.1 / e, "improved": False} for e in (1, 2)]
    loss, rates = training_curves_figure(history).axes
    assert _labels(loss) == ["train loss", "validation loss"] and _labels(rates) == []
    assert best_epoch(history) is None
    with pytest.raises(ValueError, match="empty training history"):
        training_curves_figure([])


def test_png_is_a_picture_of_the_figure(tmp_path: Path):
    png = training_curves_png(synthetic_history(), monitor="balanced_accuracy")
    path = tmp_path / "curves.png"
    path.write_bytes(png)
    assert path.stat().st_size > 10_000 and png.startswith(PNG_SIGNATURE)
    with Image.open(io.BytesIO(png)) as image:
        width, height = image.size
    assert width > 2 * height > 300  # two panels side by side


def test_history_is_found_inside_or_beside_the_model_folder(tmp_path: Path):
    assert HISTORY_FILE == trainer.HISTORY_FILE
    model = tmp_path / "run" / "model"
    model.mkdir(parents=True)
    assert find_history(model) is None
    beside = write_history(tmp_path / "run" / HISTORY_FILE, synthetic_history(2))
    assert find_history(model) == beside  # `skinattn train` layout: OUT/history.jsonl next to OUT/model/
    inside = write_history(model / HISTORY_FILE, synthetic_history(3))
    assert find_history(model) == inside  # the pipeline's model artifact carries its own copy


def test_history_reader_skips_blank_lines_and_names_a_bad_line(tmp_path: Path):
    path = tmp_path / HISTORY_FILE
    path.write_text('{"epoch": 1, "val_loss": NaN}\n\n{"epoch": 2}\n', encoding="utf-8")
    records = read_history(path)
    assert [r["epoch"] for r in records] == [1, 2] and math.isnan(records[0]["val_loss"])
    path.write_text('{"epoch": 1}\n{"epoch": 2, "val\n', encoding="utf-8")
    with pytest.raises(DataError, match=r"line 2: not JSON"):
        read_history(path)
    path.write_text('{"epoch": 1}\n[1, 2]\n', encoding="utf-8")
    with pytest.raises(DataError, match=r"line 2: not an epoch record"):
        read_history(path)


def _embedded_pngs(html_text: str) -> list[bytes]:
    return [base64.b64decode(data) for data in re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', html_text)]


def test_curves_page_embeds_the_figure_and_tabulates_every_epoch(tmp_path: Path):
    history = synthetic_history(4)
    out = write_curves_page(write_history(tmp_path / HISTORY_FILE, history), tmp_path / "deep" / "curves.html",
                            monitor="val_loss")  # fmt: skip
    page = out.read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>") and not re.search(r'src="(?!data:)', page)
    assert _embedded_pngs(page) == [training_curves_png(history, "val_loss")]
    assert page.count("<tr>") == 1 + len(history)  # heading row + one per epoch
    assert "4 epoch(s); best epoch 3 by val_loss." in page and "val balanced accuracy" in page
    assert "No finished epoch" in render_curves_page([])


@pytest.fixture(scope="module")
def run_with_history(tmp_path_factory: pytest.TempPathFactory, sa_model_dir: Path) -> tuple[Path, list[dict[str, Any]]]:
    """A `skinattn train`-like run folder: OUT/model/ (the SA test model) and OUT/history.jsonl beside it."""
    run = tmp_path_factory.mktemp("run")
    shutil.copytree(sa_model_dir, run / "model")
    history = synthetic_history(5)
    write_history(run / HISTORY_FILE, history)
    return run, history


def _evaluate(model_dir: Path, manifest_dir: Path, out: Path) -> str:
    settings = EvaluationSettings(n_bootstrap=0, explain_per_class=0, progress=False, device="cpu")
    evaluate(model_dir, manifest_dir, out, settings)
    return (out / "report.html").read_text(encoding="utf-8")


def test_report_draws_the_training_curves_when_the_history_is_found(run_with_history, manifest_dir: Path, tmp_path: Path):
    run, history = run_with_history
    report = _evaluate(run / "model", manifest_dir, tmp_path)
    curves = (tmp_path / "training_curves.png").read_bytes()
    assert curves == training_curves_png(history)  # the test model's card names no monitor
    assert curves in _embedded_pngs(report)
    assert "<h2>Training curves</h2>" in report and f"from {run / HISTORY_FILE}" in report


def test_report_says_plainly_when_there_is_no_history(sa_model_dir: Path, manifest_dir: Path, tmp_path: Path):
    report = _evaluate(sa_model_dir, manifest_dir, tmp_path)
    assert not (tmp_path / "training_curves.png").exists()
    assert "<h2>Training curves</h2>" in report
    assert f"No training curves: no {HISTORY_FILE} in the model folder or beside it" in report


def test_an_unreadable_history_is_reported_not_fatal(run_with_history, manifest_dir: Path, tmp_path: Path):
    run, _ = run_with_history
    broken = tmp_path / "run"
    shutil.copytree(run / "model", broken / "model")
    (broken / HISTORY_FILE).write_text("{not json\n", encoding="utf-8")
    report = _evaluate(broken / "model", manifest_dir, tmp_path / "eval")
    assert "No training curves:" in report and "line 1: not JSON" in report
