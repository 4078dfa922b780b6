import json
import os
import stat

import pytest

from vqfuse.errors import InputFileError
from vqfuse.io.atomic import (
    atomic_path,
    atomic_write,
    atomic_write_bytes,
    atomic_write_json,
    atomic_write_text,
    read_input_bytes,
)


def _leftovers(directory):
    return [p.name for p in directory.iterdir() if p.name.endswith(".tmp")]


def test_write_bytes_text_json(tmp_path):
    atomic_write_bytes(tmp_path / "a.bin", b"\x00\x01")
    atomic_write_text(tmp_path / "a.txt", "héllo")
    atomic_write_json(tmp_path / "a.json", {"k": [1, 2]})
    assert (tmp_path / "a.bin").read_bytes() == b"\x00\x01"
    assert (tmp_path / "a.txt").read_text(encoding="utf-8") == "héllo"
    assert json.loads((tmp_path / "a.json").read_text()) == {"k": [1, 2]}
    assert (tmp_path / "a.json").read_text().endswith("\n")
    assert _leftovers(tmp_path) == []


def test_replaces_existing_file(tmp_path):
    target = tmp_path / "f.txt"
    target.write_text("old")
    atomic_write_text(target, "new")
    assert target.read_text() == "new"


def test_failed_write_keeps_old_file_and_cleans_up(tmp_path):
    target = tmp_path / "f.txt"
    target.write_text("old")

    def half_write(tmp):
        tmp.write_text("half")
        raise RuntimeError("killed")

    with pytest.raises(RuntimeError, match="killed"):
        atomic_write(target, half_write)
    assert target.read_text() == "old"
    assert _leftovers(tmp_path) == []


def test_failed_write_creates_nothing(tmp_path):
    with pytest.raises(KeyboardInterrupt):
        with atomic_path(tmp_path / "new.txt") as tmp:
            tmp.write_text("x")
            raise KeyboardInterrupt
    assert list(tmp_path.iterdir()) == []


def test_temp_path_is_in_same_directory_and_result_returned(tmp_path):
    seen = []
    result = atomic_write(tmp_path / "f", lambda tmp: seen.append(tmp) or 42)
    assert result == 42
    assert seen[0].parent == tmp_path and seen[0] != tmp_path / "f"


def test_creates_parent_directories(tmp_path):
    atomic_write_text(tmp_path / "a" / "b" / "c.txt", "x")
    assert (tmp_path / "a" / "b" / "c.txt").read_text() == "x"


def test_unserialisable_json_touches_nothing(tmp_path):
    target = tmp_path / "m.json"
    target.write_text("{}")
    with pytest.raises(ValueError):
        atomic_write_json(target, {"loss": float("nan")})
    with pytest.raises(TypeError):
        atomic_write_json(target, {"x": object()})
    assert target.read_text() == "{}"
    assert _leftovers(tmp_path) == []


@pytest.mark.skipif(os.name == "nt", reason="POSIX permissions")
def test_permissions_follow_umask_and_existing_file(tmp_path):
    new = tmp_path / "new.txt"
    atomic_write_text(new, "x")
    umask = os.umask(0o022)
    os.umask(umask)
    assert stat.S_IMODE(new.stat().st_mode) == 0o666 & ~umask
    existing = tmp_path / "exe.sh"
    existing.write_text("old")
    existing.chmod(0o750)
    atomic_write_text(existing, "new")
    assert stat.S_IMODE(existing.stat().st_mode) == 0o750


def test_read_input_bytes_errors_name_the_file(tmp_path):
    missing = tmp_path / "missing.bin"
    with pytest.raises(InputFileError, match="no such file") as info:
        read_input_bytes(missing)
    assert str(missing) in str(info.value)
    with pytest.raises(InputFileError, match="directory"):
        read_input_bytes(tmp_path)
