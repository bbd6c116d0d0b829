"""What a training run prints, and its thread setting (issue 14, item 6): one summary line per epoch with
or without progress bars, no per-step bars in a log file, and ``train.threads`` / ``--threads``."""

from __future__ import annotations

import io
import re
from pathlib import Path
from typing import Any

import pytest
import torch

from skinattn.cli import main
from skinattn.progress import LOG_PROGRESS_INTERVAL_S, bar_options, is_interactive, step_bars
from skinattn.training import ConfigError, TrainConfig, train

EPOCH_LINE = re.compile(r"^epoch (\d+): train_loss \d")


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def epoch_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if EPOCH_LINE.match(line)]


def test_without_progress_bars_each_epoch_still_prints_its_line(small_config: Any, tmp_path: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    train(small_config(tmp_path / "run", train={"epochs": 2, "progress": False}))
    captured = capsys.readouterr()
    assert [EPOCH_LINE.match(line).group(1) for line in epoch_lines(captured.out)] == ["1", "2"]  # type: ignore[union-attr]
    assert "batch" not in captured.err


def test_no_per_step_bars_when_stderr_is_a_log_file(small_config: Any, tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    # Under capsys stderr is not a terminal, as with `skinattn train > run.log 2>&1` or a pod's log.
    train(small_config(tmp_path / "run", train={"epochs": 2, "progress": True}))
    captured = capsys.readouterr()
    assert len(epoch_lines(captured.out)) == 2
    assert "\r" not in captured.err and "batch" not in captured.err, captured.err[:500]


def test_progress_helpers_tell_a_terminal_from_a_log(monkeypatch: pytest.MonkeyPatch) -> None:
    assert is_interactive(FakeTerminal()) and step_bars(True, FakeTerminal())
    assert not step_bars(False, FakeTerminal())
    assert not is_interactive(io.StringIO()) and not step_bars(True, io.StringIO())
    assert bar_options(FakeTerminal()) == {}
    monkeypatch.delenv("TQDM_MININTERVAL", raising=False)
    assert bar_options(io.StringIO()) == {"mininterval": LOG_PROGRESS_INTERVAL_S}
    monkeypatch.setenv("TQDM_MININTERVAL", "5")  # the environment (the pipelines' scoring step) wins
    assert bar_options(io.StringIO()) == {}


@pytest.fixture
def restore_threads() -> Any:
    before = torch.get_num_threads()
    yield before
    torch.set_num_threads(before)


def test_train_threads_sets_torch_threads(small_config: Any, tmp_path: Path, restore_threads: int) -> None:
    torch.set_num_threads(2)
    train(small_config(tmp_path / "run", train={"epochs": 1, "threads": 1}))
    assert torch.get_num_threads() == 1
    assert TrainConfig().train.threads is None  # default: torch's own choice
    with pytest.raises(ConfigError, match="train.threads"):
        TrainConfig.from_dict({"train": {"threads": 0}})


def test_threads_flag_of_train_evaluate_and_score(prepared: Path, tmp_path: Path, restore_threads: int,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    torch.set_num_threads(2)
    run = tmp_path / "run"
    assert main(["train", "--data", str(prepared), "--out", str(run), "--arch", "resnet10t", "--epochs", "1",
                 "--device", "cpu", "--set", "model.img_size=32", "--set", "data.num_workers=0", "--no-progress",
                 "--threads", "1"]) == 0
    assert torch.get_num_threads() == 1
    assert "threads: 1" in (run / "config.yaml").read_text(encoding="utf-8")
    # evaluate and score apply --threads before any work (here: before refusing a missing manifest/source).
    torch.set_num_threads(2)
    main(["evaluate", "--model", str(run / "model"), "--manifest", str(tmp_path / "none"), "--out",
          str(tmp_path / "e"), "--threads", "1", "--quiet"])
    assert torch.get_num_threads() == 1
    torch.set_num_threads(2)
    main(["score", str(tmp_path / "none"), "--out", str(tmp_path / "s.csv"), "--model", str(run / "model"),
          "--threads", "1", "--quiet"])
    assert torch.get_num_threads() == 1
    with pytest.raises(SystemExit):
        main(["score", str(tmp_path / "none"), "--out", str(tmp_path / "s.csv"), "--threads", "0"])
    assert "--threads: must be at least 1" in capsys.readouterr().err
