"""Write files so a reader sees the old content or the new, never half of one.

Results, baselines, reports and replay files are written to a temporary file beside the
target, flushed to disk, then renamed over it: a crash or Ctrl-C in the middle leaves no
partial file. The one writer of the project, with its rules for where it may write:

* an output path is a regular file or a new path; a directory, a device (``/dev/null``), a
  socket or a pipe is refused (a rename would replace the device node itself);
* a symlink is written through: its target gets the new content and the link stays;
* a new file gets the umask's permissions (0644 under umask 022), a rewritten file keeps its
  own; temporary files are ``.NAME.PID.*.part``, and those of a writer that died are removed.

`check_output_path` applies these rules before a long run, so a bad path fails in a second.
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import stat
import tempfile
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import IO, Any

_PART_SUFFIX = ".part"
STALE_AFTER_S = 10.0
"""A temporary file of a dead writer untouched this long is stale (not one still renaming)."""
ABANDONED_AFTER_S = 3600.0
"""Any temporary file untouched this long is stale: an older version's, another host's."""


class OutputPathError(OSError):
    """An output path that cannot or must not be written; the message names option and path.

    An OSError, so whoever handles a failed write handles this one too.
    """


def _describe(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISFIFO(mode):
        return "a pipe"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def resolve_output_path(path: str | os.PathLike[str], option: str = "") -> Path:
    """Where writing `path` lands (a symlink's target); OutputPathError if it must not be written.

    `option` (``--out``, ``--load-json``...) starts the message, to say which input was wrong.
    """
    where = f"{option}: " if option else ""
    given = Path(os.fspath(path)).expanduser()
    if not os.fspath(path):
        raise OutputPathError(f"{where}the output path is empty")
    target = Path(os.path.realpath(given))
    try:
        mode = target.stat().st_mode
    except (FileNotFoundError, NotADirectoryError):
        mode = None
    except OSError as exc:
        raise OutputPathError(f"{where}cannot write {given} ({exc.strerror})") from None
    if mode is not None and not stat.S_ISREG(mode):
        shown = f"{given} (a link to {target})" if target != given.absolute() else f"{given}"
        raise OutputPathError(
            f"{where}{shown} is {_describe(mode)}, not a file: give the path of a file to write"
        )
    return target


def check_output_path(path: str | os.PathLike[str], option: str = "") -> Path:
    """Fail now, not after an hour of load: `path` must be writable as an output file.

    Checks the rules above, that the directory exists or can be made and is writable, and
    removes the temporary files a crashed writer left beside the target. Returns the target.
    """
    where = f"{option}: " if option else ""
    target = resolve_output_path(path, option)
    directory = target.parent
    existing = directory
    while not existing.exists():
        if existing.parent == existing:
            break
        existing = existing.parent
    if not existing.is_dir():
        raise OutputPathError(f"{where}cannot write {path}: {existing} is not a directory")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise OutputPathError(f"{where}cannot write {path}: {existing} is not writable")
    if target.exists() and not os.access(target, os.W_OK) and not os.access(directory, os.W_OK):
        raise OutputPathError(f"{where}cannot write {path}: permission denied")
    if directory.is_dir():
        remove_stale_parts(target)
    return target


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True
    return True


def remove_stale_parts(target: Path) -> list[Path]:
    """Remove ``.NAME.PID.*.part`` files beside `target` whose writing process is gone.

    The process id is this host's; a file of a process that seems alive, or that names none,
    is removed once untouched for an hour (no write takes that long).
    """
    removed: list[Path] = []
    now = time.time()
    prefix = f".{target.name}."
    try:
        candidates = list(target.parent.glob(f"{glob.escape(prefix)}*{_PART_SUFFIX}"))
    except OSError:
        return removed
    for candidate in candidates:
        pid_text = candidate.name[len(prefix) :].split(".", 1)[0]
        writer_alive = pid_text.isdigit() and _pid_alive(int(pid_text))
        with contextlib.suppress(OSError):
            untouched = now - candidate.stat().st_mtime
            if untouched < STALE_AFTER_S or (writer_alive and untouched < ABANDONED_AFTER_S):
                continue
            candidate.unlink()
            removed.append(candidate)
    return removed


def _current_umask() -> int:
    """The process umask, read without changing it where the system says it (Linux)."""
    with (
        contextlib.suppress(OSError, ValueError),
        open("/proc/self/status", encoding="ascii") as status,
    ):
        for line in status:
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _mode_for(target: Path) -> int:
    try:
        return stat.S_IMODE(target.stat().st_mode)
    except OSError:
        return 0o666 & ~_current_umask()


@contextlib.contextmanager
def atomic_writer(
    path: str | os.PathLike[str], *, binary: bool = False, option: str = ""
) -> Iterator[IO[Any]]:
    """Open a temporary file next to `path`; it replaces `path` only if the block succeeds.

    OutputPathError if `path` is a directory or a device, OSError if it cannot be written.
    """
    target = resolve_output_path(path, option)
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_parts(target)
    fd, temp_name = tempfile.mkstemp(
        prefix=f".{target.name}.{os.getpid()}.", suffix=_PART_SUFFIX, dir=target.parent
    )
    try:
        if hasattr(os, "fchmod"):  # not on Windows, where modes are not Unix permissions
            os.fchmod(fd, _mode_for(target))
        handle: IO[Any] = (
            os.fdopen(fd, "wb", buffering=1 << 20)
            if binary
            else os.fdopen(fd, "w", buffering=1 << 20, encoding="utf-8", newline="\n")
        )
        with handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp_name, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp_name)
        raise


def atomic_write_text(path: str | os.PathLike[str], text: str, *, option: str = "") -> Path:
    """Write `text` atomically; returns the path given."""
    with atomic_writer(path, option=option) as handle:
        handle.write(text)
    return Path(path)


def atomic_write_json(
    path: str | os.PathLike[str], document: Mapping[str, Any], *, option: str = ""
) -> Path:
    """Write one compact JSON document and a newline atomically; returns the path given."""
    with atomic_writer(path, option=option) as handle:
        json.dump(document, handle, separators=(",", ":"))
        handle.write("\n")
    return Path(path)
