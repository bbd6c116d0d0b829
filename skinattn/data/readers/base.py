"""What every reader produces, and the helpers they share to find and parse a ground-truth table."""

from __future__ import annotations

import csv
import dataclasses
import io
from collections.abc import Callable, Iterable, Sequence

import pandas as pd

from skinattn.storage import Entry
from skinattn.errors import DataError

# Internal column: where a row came from ("HAM10000_metadata.csv:5", the line number). Not written out.
WHERE = "_where"
# Ground-truth files are small; anything larger than this is not considered while looking for one.
MAX_TABLE_BYTES = 256 * 1024**2
_TABLE_SUFFIXES = frozenset({".csv", ".tsv", ".txt", ".tab", ""})


@dataclasses.dataclass(frozen=True)
class Problem:
    """One thing wrong with the input: what kind, where (file or file:line), and why.

    ``row`` is the index of the affected metadata row (None for a problem that has no row, such as an
    image file that no row names); quarantine drops the rows that have problems.
    """

    kind: str
    where: str
    reason: str
    image_id: str = ""
    row: int | None = None

    def line(self) -> str:
        return f"{self.where}: {self.reason}"

    def to_dict(self) -> dict[str, object]:
        return {"kind": self.kind, "where": self.where, "image_id": self.image_id, "reason": self.reason}


@dataclasses.dataclass(frozen=True)
class Exclusion:
    """A row deliberately kept out of the manifest (not an error): e.g. a diagnosis outside the class set."""

    image_id: str
    where: str
    reason: str


@dataclasses.dataclass
class Collection:
    """A collection as read from its source, before validation.

    ``rows`` has one row per ground-truth row: image_id, label ("" when unlabelled), lesion_id, the
    source's own metadata columns, and :data:`WHERE`. ``images`` lists every image file the reader
    considers part of the collection (validation checks both directions: row→image, image→row).
    """

    format: str
    source: str
    classes: list[str]
    rows: pd.DataFrame
    images: list[Entry]
    metadata_file: str
    labels_required: bool = True
    problems: list[Problem] = dataclasses.field(default_factory=list)
    excluded: list[Exclusion] = dataclasses.field(default_factory=list)
    options: dict[str, object] = dataclasses.field(default_factory=dict)


def decode_text(data: bytes, name: str) -> str:
    """UTF-8 text (a BOM allowed), or a DataError naming the line and byte offset of the first bad byte:
    decoding with replacement would turn e.g. Latin-1 accents into U+FFFD without a word."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise DataError(
            f"{name}:{line}: byte offset {exc.start}: 0x{data[exc.start]:02x} is not UTF-8 text (the file is in "
            "another encoding, e.g. Latin-1 or Windows-1252); re-save it as UTF-8"
        ) from None


def read_table(entry: Entry) -> pd.DataFrame:
    """Read a comma- or tab-separated table (with or without a header BOM) as strings, blanks kept as ""."""
    text = decode_text(entry.read(), entry.relpath)
    first_line = text.split("\n", 1)[0]
    separator = "\t" if first_line.count("\t") > first_line.count(",") else ","
    try:
        frame = pd.read_csv(io.StringIO(text), sep=separator, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, csv.Error) as exc:
        raise DataError(f"{entry.relpath}: cannot parse as a CSV/TSV table ({exc})") from exc
    frame.columns = [str(column).strip() for column in frame.columns]
    for column in frame.columns:
        frame[column] = frame[column].str.strip()
    frame[WHERE] = [f"{entry.relpath}:{line}" for line in range(2, len(frame) + 2)]
    return frame.reset_index(drop=True)


def require_columns(frame: pd.DataFrame, columns: Sequence[str], entry: Entry) -> None:
    """Raise a DataError naming the file, the missing columns and the columns it does have."""
    missing = [column for column in columns if column not in frame.columns]
    if missing:
        found = [column for column in frame.columns if column != WHERE]
        raise DataError(f"{entry.relpath}: missing column(s) {missing}; found {found}")


def _header(entry: Entry) -> list[str]:
    head = entry.read()[:65536].decode("utf-8-sig", errors="replace").split("\n", 1)[0].strip()
    separator = "\t" if head.count("\t") > head.count(",") else ","
    return [column.strip() for column in head.split(separator)]


def find_table(
    entries: Iterable[Entry],
    source: str,
    *,
    name_matches: Callable[[str], bool],
    header_matches: Callable[[list[str]], bool],
    description: str,
    explicit: str | None = None,
) -> Entry:
    """Find the one ground-truth table of a collection.

    ``explicit`` (the ``--metadata`` option) names it by relative path or file name. Otherwise a file
    whose lower-cased name satisfies ``name_matches`` wins (so that a file with the right name but a
    missing column gets a "missing column" error rather than "not found"); failing that, any small
    table whose header satisfies ``header_matches``.
    """
    tables = [e for e in entries if not e.is_image and e.suffix in _TABLE_SUFFIXES and e.size <= MAX_TABLE_BYTES]
    if explicit:
        chosen = [e for e in tables if explicit in (e.relpath, e.name)]
        if len(chosen) != 1:
            found = "no" if not chosen else f"{len(chosen)}"
            raise DataError(f"{source}: {found} table(s) named {explicit!r} (--metadata); tables here: "
                            f"{[e.relpath for e in tables][:20]}")
        return chosen[0]
    candidates = [e for e in tables if name_matches(e.name.lower())]
    if not candidates:
        candidates = [e for e in tables if header_matches(_header(e))]
    if len(candidates) == 1:
        return candidates[0]
    if not candidates:
        raise DataError(f"{source}: no {description} found; name it with --metadata")
    raise DataError(f"{source}: several candidate {description}s {[e.relpath for e in candidates]}; "
                    "choose one with --metadata")


def one_hot_label(row: pd.Series, columns: dict[str, str]) -> tuple[str | None, str]:
    """The class of a one-hot row (``columns`` maps column name → class code), or (None, reason)."""
    positive = []
    for column, code in columns.items():
        value = row[column]
        try:
            number = float(value)
        except ValueError:
            return None, f"column {column} holds {value!r}, not a number"
        if number not in (0.0, 1.0):
            return None, f"column {column} holds {value!r}; one-hot ground truth must be 0 or 1"
        if number == 1.0:
            positive.append(code)
    if len(positive) != 1:
        return None, f"one-hot ground truth has {len(positive)} positive classes {positive}, expected exactly 1"
    return positive[0], ""
