"""The predictions and errors tables: their columns, and reading / streaming-writing them as CSV or Parquet."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

import pandas as pd

from skinattn.errors import DataError
from skinattn.evaluation.predict import prob_column
from skinattn.fileio import atomic_path

TABLE_SUFFIXES = (".csv", ".parquet")
ERROR_COLUMNS: tuple[str, ...] = ("file", "image_id", "reason")
TOP_CLASS = "top_class"
MODEL_VERSION = "model_version"
_TEXT_COLUMNS = ("image_id", "file", "label", TOP_CLASS, MODEL_VERSION, "reason")


def prediction_columns(class_names: Sequence[str]) -> list[str]:
    """image_id, file, label ("" when unknown), prob_<class> in model order, top_class, model_version."""
    return ["image_id", "file", "label", *(prob_column(c) for c in class_names), TOP_CLASS, MODEL_VERSION]


def check_suffix(path: str | os.PathLike[str]) -> str:
    suffix = Path(path).suffix.lower()
    if suffix not in TABLE_SUFFIXES:
        raise DataError(f"{path}: the output must end in .csv or .parquet")
    return suffix


def read_table(path: str | os.PathLike[str]) -> pd.DataFrame:
    """A predictions or errors table; text columns stay text (an id such as ``NA`` is not a missing value)."""
    try:
        if check_suffix(path) == ".parquet":
            return pd.read_parquet(path)
        frame = pd.read_csv(path, dtype={c: str for c in _TEXT_COLUMNS}, keep_default_na=False)
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: cannot read table ({exc})") from exc
    return frame


def write_table(frame: pd.DataFrame, path: str | os.PathLike[str]) -> Path:
    """Write a whole table atomically."""
    with TableWriter(path, list(frame.columns)) as writer:
        writer.append(frame)
    return Path(path)


class TableWriter:
    """Append data frames to one CSV or Parquet file without holding them all; renamed into place on success.

    Parquet gets one row group per appended frame. If the block raises, nothing appears under ``path``.
    """

    def __init__(self, path: str | os.PathLike[str], columns: Sequence[str]):
        self.path = Path(path)
        self.columns = list(columns)
        self.rows = 0
        self._parquet = check_suffix(path) == ".parquet"
        self._atomic = atomic_path(self.path)
        self._writer = None
        self._handle = None

    def __enter__(self) -> TableWriter:
        self._tmp = self._atomic.__enter__()
        if not self._parquet:
            self._handle = open(self._tmp, "w", encoding="utf-8", newline="")  # noqa: SIM115 - closed in __exit__
            pd.DataFrame(columns=self.columns).to_csv(self._handle, index=False)
        return self

    def append(self, frame: pd.DataFrame) -> None:
        if list(frame.columns) != self.columns:
            raise DataError(f"{self.path}: columns {list(frame.columns)} do not match {self.columns}")
        if self._parquet:
            import pyarrow as pa
            import pyarrow.parquet as pq

            table = pa.Table.from_pandas(frame, preserve_index=False)
            if self._writer is None:
                self._writer = pq.ParquetWriter(self._tmp, table.schema)
            self._writer.write_table(table.cast(self._writer.schema))
        else:
            frame.to_csv(self._handle, index=False, header=False)
        self.rows += len(frame)

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        if self._parquet:
            if self._writer is None and exc_type is None:  # no rows: still a valid, typed-by-pandas file
                pd.DataFrame(columns=self.columns).to_parquet(self._tmp, index=False)
            elif self._writer is not None:
                self._writer.close()
        elif self._handle is not None:
            self._handle.close()
        self._atomic.__exit__(exc_type, exc, tb)
