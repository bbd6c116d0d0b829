"""Mistakes a user makes on the command line end in one line naming the path and the reason, exit 2, and
no traceback (issue 11, item 5)."""

from __future__ import annotations

import pytest

from skinattn.cli import main


def _run(argv, capsys) -> tuple[int, str]:
    code = main([str(a) for a in argv])
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return code, err


def test_registry_list_of_a_missing_root_says_so(tmp_path, capsys):
    code, err = _run(["registry", "list", "--root", tmp_path / "no-such-registry"], capsys)
    assert code == 2
    assert "no-such-registry: no registry here" in err


def test_output_under_an_existing_file_is_named(tmp_path, capsys):
    from skinattn.data.synthetic import make_sample_dataset

    data = tmp_path / "data"
    make_sample_dataset(data, per_class=1, size=16, seed=0)
    blocker = tmp_path / "blocker"
    blocker.write_text("a file, not a folder\n")
    code, err = _run(["ingest", data, "--format", "ham10000", "--out", blocker / "manifest"], capsys)
    assert code == 2
    assert f"{blocker / 'manifest'}" in err or f"{blocker}" in err
    assert "Not a directory" in err or "File exists" in err


@pytest.mark.parametrize("content", ["", "\x00\x01not,csv\n\xff", "[1, 2]"], ids=["empty", "binary", "json-list"])
def test_a_file_that_is_not_a_manifest_is_named(tmp_path, capsys, content):
    manifest = tmp_path / "manifest.csv"
    manifest.write_bytes(content.encode("latin-1"))
    code, err = _run(["prepare", manifest, "--out", tmp_path / "prepared"], capsys)
    assert code == 2
    assert str(manifest) in err


def test_a_broken_manifest_description_is_named(tmp_path, capsys):
    from skinattn.data.synthetic import make_sample_dataset

    data = tmp_path / "data"
    make_sample_dataset(data, per_class=2, size=16, seed=0)
    assert _run(["ingest", data, "--format", "ham10000", "--out", tmp_path / "manifest"], capsys)[0] == 0
    description = tmp_path / "manifest" / "manifest.json"
    description.write_text("{not json")
    code, err = _run(["prepare", tmp_path / "manifest", "--out", tmp_path / "prepared"], capsys)
    assert code == 2
    assert f"{description}: not a manifest description" in err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["ingest", "data", "--format", "ham10000", "--out", "m", "--workers", "-1"], "argument --workers: must be at least 1, got -1"),
        (["ingest", "data", "--format", "ham10000", "--out", "m", "--max-pixels", "0"], "argument --max-pixels: must be at least 1, got 0"),
        (["prepare", "m", "--out", "p", "--workers", "0"], "argument --workers: must be at least 1, got 0"),
        (["evaluate", "--model", "m", "--manifest", "p", "--out", "e", "--workers", "-2"], "argument --workers: must be at least 0, got -2"),
        (["ingest", "data", "--format", "ham10000", "--out", "m", "--workers", "many"], "expected a whole number, got 'many'"),
    ],
    ids=["ingest-workers", "ingest-max-pixels", "prepare-workers", "evaluate-workers", "not-a-number"],
)
def test_bad_numbers_are_usage_errors(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
