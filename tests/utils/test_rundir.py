"""utils.rundir.unique_output_names: plain stems unless they clash, then relative paths."""

from pathlib import Path

from detforge.utils.rundir import unique_output_names


def test_plain_stems_when_nothing_clashes(tmp_path: Path) -> None:
    assert unique_output_names([tmp_path / "a.jpg", tmp_path / "sub/b.png"]) == ["a", "b"]
    assert unique_output_names([]) == []


def test_clashing_stems_are_named_by_relative_path(tmp_path: Path) -> None:
    files = [tmp_path / p for p in ("a.jpg", "a.png", "x/b.jpg", "y/b.jpg", "c.jpg")]
    assert unique_output_names(files) == ["a.jpg", "a.png", "x__b.jpg", "y__b.jpg", "c"]


def test_case_only_clashes_and_taken_names_stay_unique(tmp_path: Path) -> None:
    files = [tmp_path / p for p in ("y/c.jpg", "y/C.JPG", "a.jpg", "a.png", "a.jpg.png")]
    names = unique_output_names(files)
    assert names == ["y__c.jpg", "y__C.JPG~2", "a.jpg~2", "a.png", "a.jpg"]
    assert len({n.casefold() for n in names}) == len(names)
