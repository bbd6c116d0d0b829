"""Committed progress of a scoring run, so that a killed run resumes and scores every image exactly once.

The items are cut into fixed chunks (chunk ``k`` holds items ``k*C .. k*C+C-1``). When every image of a
chunk has been scored or has failed, the chunk is committed: its errors go to ``part-KKKKKK.errors.csv``
and then its predictions to ``part-KKKKKK.csv``, each written to a temporary name and renamed. The
predictions part is the commit marker: a chunk whose predictions part exists is done, and a re-run skips
it; a chunk killed half-way has no part and is scored again in full. Because each item belongs to exactly
one chunk and a chunk is either committed whole or not at all, the merged output holds each image once.

``plan.json`` records what the chunks mean (item fingerprint, chunk size, model version); a re-run that
would cut or score differently is refused instead of mixing two runs.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import pandas as pd

from skinattn.errors import DataError
from skinattn.fileio import write_json
from skinattn.scoring.tables import write_table

PLAN_FILE = "plan.json"
PLAN_FORMAT = "skinattn-score-plan"
_PART = re.compile(r"^part-(\d{6})\.csv$")


class ChunkStore:
    """The work folder of one scoring run (see the module docstring)."""

    def __init__(self, folder: str | Path, plan: dict[str, Any], restart: bool = False):
        self.folder = Path(folder)
        self.plan = {"format": PLAN_FORMAT} | plan
        if restart and self.folder.exists():
            shutil.rmtree(self.folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        plan_path = self.folder / PLAN_FILE
        if plan_path.is_file():
            self._check_same_plan(plan_path)
        else:
            write_json(plan_path, self.plan)
        for stale in self.folder.glob(".*.tmp"):  # temporary files of a killed commit
            stale.unlink(missing_ok=True)

    @property
    def chunk_size(self) -> int:
        return int(self.plan["chunk_size"])

    def _check_same_plan(self, plan_path: Path) -> None:
        try:
            previous = json.loads(plan_path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise DataError(f"{plan_path}: unreadable progress plan ({exc}); rerun with --restart") from exc
        differing = sorted(k for k in self.plan.keys() | previous.keys() if previous.get(k) != self.plan.get(k))
        if differing:
            details = "; ".join(f"{k}: was {previous.get(k)!r}, now {self.plan.get(k)!r}" for k in differing
                                if k != "fingerprint") or "the list of images changed"
            raise DataError(
                f"{self.folder}: holds progress of a different run ({details}). Resume with the same source, "
                "model version, shard and chunk size, or start over with --restart"
            )

    def part_path(self, chunk: int) -> Path:
        return self.folder / f"part-{chunk:06d}.csv"

    def errors_path(self, chunk: int) -> Path:
        return self.folder / f"part-{chunk:06d}.errors.csv"

    def completed(self) -> set[int]:
        """Chunks whose predictions part has been committed."""
        return {int(m.group(1)) for p in self.folder.iterdir() if (m := _PART.match(p.name))}

    def commit(self, chunk: int, predictions: pd.DataFrame, errors: pd.DataFrame) -> None:
        """Write a chunk's errors, then its predictions (the commit marker), each atomically."""
        write_table(errors, self.errors_path(chunk))
        write_table(predictions, self.part_path(chunk))

    def parts(self, chunks: int) -> list[tuple[Path, Path]]:
        """(predictions, errors) part paths of chunks 0..chunks-1; all must be committed."""
        missing = sorted(set(range(chunks)) - self.completed())
        if missing:
            raise DataError(f"{self.folder}: chunk(s) {missing[:10]} are not committed yet")
        return [(self.part_path(k), self.errors_path(k)) for k in range(chunks)]

    def remove(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)
