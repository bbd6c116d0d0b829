"""The paper's Table 1 layout assembled from several evaluations (skinattn.evaluation.ablation)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from skinattn.constants import HAM10000_CLASSES
from skinattn.errors import DataError
from skinattn.evaluation.ablation import ablation_table
from skinattn.evaluation.metrics import compute_metrics, to_json_ready
from skinattn.steps.evaluation import ablation_table_step


def _evaluation(arch: str, sa: bool, y_true: np.ndarray, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    probs = rng.dirichlet(np.ones(len(HAM10000_CLASSES)), size=len(y_true))
    metrics = compute_metrics(y_true, probs, list(HAM10000_CLASSES), n_bootstrap=0, progress=False)
    return to_json_ready(metrics | {"run": {"arch": arch, "soft_attention": sa}})


@pytest.fixture
def evaluations():
    y_true = np.repeat(np.arange(len(HAM10000_CLASSES)), [3, 4, 5, 2, 6, 20, 2])
    return [_evaluation("resnet18", False, y_true, 0), _evaluation("resnet18", True, y_true, 1)]


def test_table_1_layout(evaluations):
    table = ablation_table(evaluations)
    assert table["Dis."].tolist() == [c.upper() for c in HAM10000_CLASSES] + ["Avg", "W. Avg"]
    assert table.columns.tolist() == [
        "Dis.", "Precision resnet18", "Precision resnet18 + SA", "AUC resnet18", "AUC resnet18 + SA", "#",
    ]  # fmt: skip
    assert table["#"].tolist() == [3, 4, 5, 2, 6, 20, 2, 42, 42]
    # each cell is that network's own number
    assert table.loc[1, "Precision resnet18 + SA"] == pytest.approx(evaluations[1]["per_class"]["bcc"]["precision"])
    assert table.loc[8, "AUC resnet18"] == pytest.approx(evaluations[0]["weighted_avg"]["auc"])


def test_table_refuses_different_test_sets_and_duplicates(evaluations):
    other = _evaluation("vgg16", True, np.repeat(np.arange(7), [3, 4, 5, 2, 6, 21, 2]), 2)
    with pytest.raises(DataError, match="another test set"):
        ablation_table([*evaluations, other])
    with pytest.raises(DataError, match="more than once"):
        ablation_table([evaluations[0], evaluations[0]])


def test_table_step_writes_markdown_and_csv(evaluations, tmp_path):
    import json

    folders = []
    for i, metrics in enumerate(evaluations):
        folder = tmp_path / f"eval{i}"
        folder.mkdir()
        (folder / "metrics.json").write_text(json.dumps(metrics))
        folders.append(str(folder))
    markdown = ablation_table_step(folders, tmp_path / "out" / "table.md", tmp_path / "out" / "table.csv")
    assert markdown.splitlines()[0].startswith("| Dis. | Precision resnet18 |")
    assert (tmp_path / "out" / "table.md").read_text() == markdown
    csv = pd.read_csv(tmp_path / "out" / "table.csv")
    assert csv.shape == (9, 6) and csv["#"].iloc[-1] == 42
    with pytest.raises(DataError, match="no metrics.json"):
        ablation_table_step([str(tmp_path)], tmp_path / "t.md", tmp_path / "t.csv")
