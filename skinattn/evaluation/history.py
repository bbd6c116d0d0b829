"""Finding and reading the ``history.jsonl`` a training run wrote (one JSON object per finished epoch).

Why here: the figures, the evaluation report and the train step's curves page all draw from the history,
and each gets it from a model folder. Training writes it beside the model folder (``OUT/history.jsonl``
next to ``OUT/model/``), while the pipeline's train step copies it into the model folder itself; a model
from the registry or ``skinattn models init`` has none.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from skinattn.errors import DataError

# The name skinattn.training.trainer writes (tests check the two agree).
HISTORY_FILE = "history.jsonl"


def find_history(model_dir: str | Path) -> Path | None:
    """The history of the run that produced ``model_dir``: inside it (pipeline model artifact), else beside
    it (a ``skinattn train`` run folder); None when neither exists."""
    model_dir = Path(model_dir)
    for candidate in (model_dir / HISTORY_FILE, model_dir.parent / HISTORY_FILE):
        if candidate.is_file():
            return candidate
    return None


def read_history(path: str | Path) -> list[dict[str, Any]]:
    """Every epoch's record, in file order; blank lines are skipped. A line that is not a JSON object
    raises DataError naming the file and line."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: cannot read the training history ({exc})") from exc
    records = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataError(f"{path}, line {number}: not JSON ({exc.msg})") from None
        if not isinstance(record, dict) or "epoch" not in record:
            raise DataError(f"{path}, line {number}: not an epoch record (a JSON object with an 'epoch')")
        records.append(record)
    return records
