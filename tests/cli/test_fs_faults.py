"""File-system faults: one line naming the path and the cause, exit 2, last.pt intact."""

import contextlib
import errno
import os
import subprocess

import pytest

from detforge.cli import main
from detforge.engine.checkpoint import load_checkpoint, save_atomic
from detforge.utils.atomic import WriteError, atomic_write


def _run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def _error_lines(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith("detforge train: error:")]


def test_a_failed_write_names_the_file_and_keeps_the_old_one(tmp_path):
    target = tmp_path / "last.pt"
    target.write_bytes(b"old")

    def fill(f):
        f.write(b"partial")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    with pytest.raises(WriteError) as e:
        atomic_write(target, fill)
    assert str(e.value) == f"cannot write {target}: No space left on device"
    assert e.value.errno == errno.ENOSPC
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]  # no temp file left behind


def test_cli_turns_a_write_error_into_one_line(capsys, tiny_args, monkeypatch):
    def no_space(*_a, **_k):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr("detforge.utils.atomic.tempfile.mkstemp", no_space)
    code, _, err = _run(capsys, "train", *tiny_args)
    assert code == 2
    assert "Traceback" not in err
    (line,) = _error_lines(err)
    assert line.endswith(": No space left on device") and "cannot write" in line


@contextlib.contextmanager
def _tmpfs(path, size_mb: int, options: str = ""):
    path.mkdir()
    res = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size_mb}m{options}", "tmpfs", str(path)],
        capture_output=True,
        text=True,
    )
    if res.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({res.stderr.strip()}); the unit tests above "
                    "cover the same paths with a simulated error")  # fmt: skip
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def _fill(folder, leave_bytes: int) -> None:
    """Write a filler file until only about ``leave_bytes`` are free."""
    st = os.statvfs(folder)
    free = st.f_bavail * st.f_frsize
    with open(folder / "filler", "wb") as f:
        f.write(b"\0" * max(0, free - leave_bytes))


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a small tmpfs needs root")
def test_full_disk_and_read_only_run_folder(capsys, tiny_args, tmp_path):
    with _tmpfs(tmp_path / "disk", 256) as disk:
        args = [a for a in tiny_args if not a.startswith("project=")] + [f"project={disk}"]
        code, _, err = _run(capsys, "train", *args, "epochs=1")
        assert code == 0, err
        last = disk / "train" / "weights" / "last.pt"
        before = last.read_bytes()

        # room for config.yaml and the log, not for a checkpoint: the end of the epoch fails
        _fill(disk, 256 * 1024)
        code, _, err = _run(capsys, "train", f"resume={last}", "epochs=2")
        assert code == 2
        assert "Traceback" not in err
        (line,) = _error_lines(err)
        assert "No space left on device" in line and str(disk) in line
        assert last.read_bytes() == before  # the previous checkpoint is intact
        assert load_checkpoint(last)["train"]["epoch"] == 1
        assert not [p for p in last.parent.iterdir() if p.name.endswith(".tmp")]

    with _tmpfs(tmp_path / "ro", 1, ",ro") as ro:
        args = [a for a in tiny_args if not a.startswith("project=")] + [f"project={ro}"]
        code, _, err = _run(capsys, "train", *args, "epochs=1")
        assert code == 2
        assert "Traceback" not in err
        (line,) = _error_lines(err)
        assert "Read-only file system" in line and str(ro) in line


def test_save_atomic_of_a_checkpoint_round_trips(tmp_path):
    import torch

    save_atomic({"model": {"w": torch.ones(2)}, "model_spec": {}}, tmp_path / "c.pt")
    assert torch.equal(load_checkpoint(tmp_path / "c.pt")["model"]["w"], torch.ones(2))
