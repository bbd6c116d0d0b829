"""The paper's Table 1 layout assembled from several evaluations (skinattn.evaluation.ablation)."""

from __future__ import annotations

from pathlib import Path

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


# ---- repeated ablations: seeds, the paired report ---------------------------------------------------------


def _cell_folder(root, arch: str, sa: bool, seed: int, y_true: np.ndarray, skill: float, protocol: str = "grouped"):
    """An evaluation folder as `skinattn evaluate` leaves it: metrics.json (with the run's training seed and
    split protocol) and predictions.csv, from probabilities of a model with ``skill`` on the true class."""
    import json

    from skinattn.evaluation.predict import prob_column

    rng = np.random.default_rng([seed, int(sa), int(skill * 10)])
    logits = rng.normal(size=(len(y_true), len(HAM10000_CLASSES)))
    logits[np.arange(len(y_true)), y_true] += skill
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    metrics = compute_metrics(y_true, probs, list(HAM10000_CLASSES), n_bootstrap=0, progress=False)
    run = {"arch": arch, "soft_attention": sa, "training_seed": seed, "split_protocol": protocol}
    folder = root / f"{arch}{'-sa' if sa else ''}-{seed}"
    folder.mkdir(parents=True)
    (folder / "metrics.json").write_text(json.dumps(to_json_ready(metrics | {"run": run})))
    table = pd.DataFrame({"image_id": [f"ISIC_{i:07d}" for i in range(len(y_true))],
                          "label": [HAM10000_CLASSES[k] for k in y_true],
                          "prediction": [HAM10000_CLASSES[k] for k in probs.argmax(1)]})  # fmt: skip
    for k, name in enumerate(HAM10000_CLASSES):
        table[prob_column(name)] = probs[:, k]
    table.to_csv(folder / "predictions.csv", index=False)
    return str(folder)


@pytest.fixture
def labels() -> np.ndarray:
    return np.repeat(np.arange(len(HAM10000_CLASSES)), [12, 14, 20, 6, 20, 120, 8])


def test_ablation_cells_repeat_every_configuration_with_paired_training_seeds():
    from skinattn.evaluation.ablation import ablation_cells, training_seed
    from skinattn.run_parameters import SEED_RANGE

    configs = [{"arch": "resnet34", "soft_attention": False}, {"arch": "resnet34", "soft_attention": True}]
    cells = ablation_cells(configs, seeds=3, seed=7)
    assert len(cells) == 6
    assert [c["seed"] for c in cells[:2]] == [7, 7]  # replicate 0 trains with the run's seed, like the training pipeline
    seeds = [c["seed"] for c in cells[::2]]
    assert len(set(seeds)) == 3 and all(SEED_RANGE[0] <= s <= SEED_RANGE[1] for s in seeds)
    assert [c["seed"] for c in cells[1::2]] == seeds  # both arms of a replicate share its seed
    assert ablation_cells(configs, 3, 7) == cells and training_seed(8, 1) != training_seed(7, 1)
    with pytest.raises(DataError, match="at least 1 seed"):
        ablation_cells(configs, 0, 7)


def test_table_1_is_the_mean_over_seeds_and_refuses_a_repeated_seed(labels, tmp_path):
    import json

    folders = [_cell_folder(tmp_path, "resnet34", sa, seed, labels, 1.0) for sa in (False, True) for seed in (1, 2)]
    evaluations = [json.loads((Path(f) / "metrics.json").read_text()) for f in folders]
    table = ablation_table(evaluations)
    assert table.columns.tolist() == [
        "Dis.", "Precision resnet34", "Precision resnet34 + SA", "AUC resnet34", "AUC resnet34 + SA", "#",
    ]  # fmt: skip
    expected = np.mean([evaluations[2]["macro_avg"]["auc"], evaluations[3]["macro_avg"]["auc"]])
    assert table.loc[7, "AUC resnet34 + SA"] == pytest.approx(expected)
    with pytest.raises(DataError, match=r"resnet34 \(training seed 1\)"):
        ablation_table([*evaluations, evaluations[0]])


def test_table_step_writes_the_verdict_first_and_the_paired_report(labels, tmp_path):
    folders = [_cell_folder(tmp_path / "cells", "resnet34", sa, seed, labels, 2.5 if sa else 0.3)
               for seed in (1, 2) for sa in (False, True)]  # fmt: skip
    out = tmp_path / "out"
    markdown = ablation_table_step(folders, out / "table.md", out / "table.csv", paired_out=out / "paired",
                                   report_out=out / "report.html", bootstrap=200)  # fmt: skip
    assert markdown.startswith("**Verdict.** On this data Soft Attention helped resnet34 beyond noise: balanced accuracy +")
    assert "2 seeds, higher in 2 of 2" in markdown
    headings = [line for line in markdown.splitlines() if line.startswith("### ")]
    assert len(headings) == 4 and all(h.endswith(" — test split grouped by lesion") for h in headings)
    assert headings[-1].startswith("### Table 1")
    assert (out / "table.md").read_text() == markdown
    assert pd.read_csv(out / "table.csv").shape == (9, 6)  # Table 1 stays the CSV output

    paired = pd.read_csv(out / "paired" / "paired.csv")
    assert paired["architecture"].tolist() == ["resnet34"] and paired["seeds"].tolist() == [2]
    low, high = paired["Δ balanced accuracy CI low"].iloc[0], paired["Δ balanced accuracy CI high"].iloc[0]
    assert 0 < low <= paired["Δ balanced accuracy (points)"].iloc[0] <= high
    assert paired["verdict"].tolist() == ["helped"]
    import json

    report = json.loads((out / "paired" / "paired.json").read_text())
    assert report["split_protocol"] == "grouped" and report["test_images"] == len(labels)
    assert report["architectures"][0]["comparison"]["seeds"] == 2
    html = (out / "report.html").read_text()
    assert html == (out / "paired" / "report.html").read_text()
    assert 'src="data:image/png;base64,' in html and "helped resnet34 beyond noise" in html
    assert (out / "paired" / "paired.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_paired_report_names_the_paper_protocol_and_lists_unpaired_networks(labels, tmp_path):
    folders = [_cell_folder(tmp_path, arch, sa, seed, labels, 1.0, protocol="paper")
               for arch, sa in (("resnet34", False), ("resnet34", True), ("vgg16", True)) for seed in (1, 2)]  # fmt: skip
    markdown = ablation_table_step(folders, tmp_path / "t.md", tmp_path / "t.csv", paired_out=tmp_path / "p", bootstrap=50)
    assert "### Table 1: precision and AUC per class, mean over seeds — paper protocol: test drawn only" in markdown
    assert "Test split: paper protocol (Datta et al.'s test draw" in markdown
    assert "Not compared (only one arm was trained): vgg16 + SA." in markdown


def test_paired_report_refuses_what_cannot_be_paired(labels, tmp_path):
    base = _cell_folder(tmp_path, "resnet34", False, 1, labels, 1.0)
    treated = _cell_folder(tmp_path, "resnet34", True, 1, labels, 1.0)
    other_seed = _cell_folder(tmp_path, "resnet34", True, 2, labels, 1.0)
    other_images = _cell_folder(tmp_path / "other", "resnet34", True, 1, labels[:-1], 1.0)
    no_predictions = _cell_folder(tmp_path / "bare", "resnet34", True, 1, labels, 1.0)
    (Path(no_predictions) / "predictions.csv").unlink()

    def step(*folders):
        return ablation_table_step(list(folders), tmp_path / "t.md", tmp_path / "t.csv", paired_out=tmp_path / "p", bootstrap=10)

    with pytest.raises(DataError, match="different seeds"):
        step(base, treated, other_seed)
    with pytest.raises(DataError, match="another test set"):  # Table 1 sees the supports differ
        step(base, other_images)
    renamed = Path(_cell_folder(tmp_path / "renamed", "resnet34", True, 1, labels, 1.0))
    predictions = pd.read_csv(renamed / "predictions.csv")
    predictions.loc[0, "image_id"] = "ISIC_9999999"  # same supports, one other image
    predictions.to_csv(renamed / "predictions.csv", index=False)
    with pytest.raises(DataError, match=r"renamed.*other test images.*extra e\.g\. \['ISIC_9999999'\]"):
        step(base, str(renamed))
    with pytest.raises(DataError, match="no predictions.csv"):
        step(base, no_predictions)


def test_prepare_splits_with_the_given_protocol_and_the_evaluation_can_name_it(tmp_path):
    from skinattn.data.synthetic import make_sample_dataset
    from skinattn.evaluation.provenance import run_provenance, split_protocol
    from skinattn.steps.data import ingest_step, prepare_step

    make_sample_dataset(tmp_path / "data", per_class=20, size=32, seed=0)
    ingest_step(str(tmp_path / "data"), "ham10000", tmp_path / "manifest")
    grouped = prepare_step(tmp_path / "manifest", tmp_path / "grouped", seed=0, cache_size=None)
    paper = prepare_step(tmp_path / "manifest", tmp_path / "paper", seed=0, cache_size=None, protocol="paper")
    assert (grouped["split"]["protocol"], paper["split"]["protocol"]) == ("grouped", "paper")
    assert grouped["data_fingerprint"] != paper["data_fingerprint"]  # another split
    assert split_protocol(tmp_path / "paper") == "paper"
    assert split_protocol(tmp_path / "grouped" / "manifest.csv") == "grouped"
    assert split_protocol(tmp_path / "manifest") is None  # an ingested manifest was never split
    card = {"metadata": {"config": {"train": {"seed": 1234}}}}
    assert run_provenance(card, tmp_path / "paper") == {"training_seed": 1234, "split_protocol": "paper"}
    assert run_provenance({}, tmp_path / "missing")["training_seed"] is None


def test_compare_command_writes_the_paired_report_of_hand_made_evaluations(labels, tmp_path, capsys):
    """`skinattn compare`: the same report for evaluations made outside the pipeline (a CPU recipe by hand)."""
    from skinattn.cli import main

    folders = [_cell_folder(tmp_path / "cells", "resnet10t", sa, seed, labels, 0.8)
               for seed in (3, 4, 5) for sa in (False, True)]  # fmt: skip
    out = tmp_path / "compare"
    assert main(["compare", *folders, "--out", str(out), "--bootstrap", "200"]) == 0
    printed = capsys.readouterr().out
    # Equal skill in both arms: the verdict must not claim an effect.
    assert "did not" in printed.split("\n", 1)[0] and "beyond noise" in printed.split("\n", 1)[0]
    assert {p.name for p in out.iterdir()} == {"paired.md", "paired.csv", "paired.json", "paired.png", "report.html"}
    assert pd.read_csv(out / "paired.csv")["seeds"].tolist() == [3]
    # A folder that is not an evaluation is named, with exit status 2 and no traceback.
    assert main(["compare", *folders, str(tmp_path), "--out", str(tmp_path / "again")]) != 0
    assert "metrics.json" in capsys.readouterr().err
