"""Reading and writing files safely: checkpoints and tokenizer files both go through here.

Reading. A file is opened once, and only if it is a regular file: a FIFO would wait forever for a
writer and /dev/zero never ends. Everything a reader uses comes from that one open file, so a
save that renames a new file into place meanwhile cannot hand it half of each version.

Writing. The new bytes go to a temporary file in the same folder, reach the disk (fsync), and are
renamed over the old file in one atomic step (os.replace): a crash, a full disk or Ctrl-C leaves
the previous file as it was. A save replaces only a regular file, or creates a new one: never a
folder, a device or a FIFO. A symbolic link stays a link; the file it points to is replaced. An
existing file keeps its permission bits (a 0600 checkpoint stays private); a new one gets the
usual ones (0666 less the umask). A save that was killed leaves its temporary file
`.<name>.<pid>-<random>.tmp` behind; the next save to the same path removes it once that process
is gone.
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import re
import secrets
import stat
import time
from pathlib import Path

from .errors import CheckpointError, describe

MAX_JSON_BYTES = 32 * 2**20  # a tokenizer file or checkpoint header; the package writes far less
# a temporary file that names no process (older versions wrote those) counts as orphaned after an hour
STALE_UNOWNED_TEMP_SECONDS = 3600


def require_path(name: str, value) -> None:
    if not isinstance(value, (str, os.PathLike)):
        raise TypeError(f"{name} must be a file path (a str or pathlib.Path), got {describe(value)}")


# ----------------------------------------------------------------------------- reading


@contextlib.contextmanager
def open_regular(path, what: str, hint: str = ""):
    """The file at `path` opened once for binary reading, provided it is a regular file.

    A missing file raises FileNotFoundError("no {what} at ..."); anything else CheckpointError.
    """
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)  # a FIFO opens at once
    try:
        fd = os.open(path, flags | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise FileNotFoundError(f"no {what} at {str(path)!r}") from None
    except OSError as e:  # no permission, a link loop, ...
        raise CheckpointError(f"cannot read the {what} {str(path)!r}: {e.strerror}") from None
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        raise CheckpointError(f"{str(path)!r} is {_kind(mode)}, not a {what}{hint}")
    with os.fdopen(fd, "rb") as f:
        yield f


def read_limited(f, path, what: str, limit: int) -> bytes:
    """All of the open file `f`, refusing more than `limit` bytes."""
    data = f.read(limit + 1)
    if len(data) > limit:
        raise CheckpointError(f"{str(path)!r} is larger than {limit:,} bytes, the most a {what} may be")
    return data


def loads_json(text, where: str, kind: str = "valid JSON", hint: str = ""):
    """json.loads of a str or UTF-8 bytes; any failure (bad syntax, bad UTF-8, deep nesting) becomes a
    CheckpointError "{where} is not {kind} (why){hint}"."""
    try:
        return json.loads(text.decode("utf-8") if isinstance(text, bytes) else text)
    except RecursionError:  # "[[[[..." 100,000 deep: report it instead of crashing the caller
        raise CheckpointError(f"{where} is not {kind} (it is nested too deeply){hint}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{where} is not {kind} ({e}){hint}") from None


def read_json(path, what: str, hint: str = ""):
    """The JSON value in the regular file at `path` (UTF-8, at most MAX_JSON_BYTES)."""
    require_path("path", path)
    with open_regular(path, f"{what} file") as f:
        data = read_limited(f, path, f"{what} file", MAX_JSON_BYTES)
    return loads_json(data, repr(str(path)), f"a {what} JSON file", hint)


def _kind(mode: int) -> str:
    kinds = [
        (stat.S_ISDIR, "a folder"),
        (stat.S_ISFIFO, "a FIFO (named pipe)"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISLNK, "a symbolic link"),
    ]
    return next((name for test, name in kinds if test(mode)), "not a regular file")


# ----------------------------------------------------------------------------- writing


def atomic_write(path, write, what: str) -> None:
    """Replace the file at `path` by what `write(temporary_path)` writes: all of it, or nothing.

    `what` names the file in error messages ("checkpoint", "tokenizer file").
    """
    require_path("path", path)
    target = _target(Path(path), what)
    mode = _mode_to_keep(target, path, what)
    remove_stale_temps(target)
    tmp = target.parent / f".{target.name}.{os.getpid()}-{secrets.token_hex(4)}.tmp"
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)  # the kernel applies the umask
    except OSError as e:  # e.g. a read-only folder: name the file asked for, not the temporary one
        where = f"{str(path)!r}: {e.strerror} in {str(target.parent)!r}"
        raise OSError(e.errno, f"cannot save the {what} {where}") from None
    new_file_mode = stat.S_IMODE(os.fstat(fd).st_mode)
    os.close(fd)
    try:
        write(str(tmp))
        os.chmod(tmp, new_file_mode if mode is None else mode)  # keep the replaced file's permissions
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())  # the bytes are on disk before the rename makes them visible
        os.replace(tmp, target)  # atomic: readers see the old file or the new one, never half of one
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_folder(target.parent)


def write_bytes(path, data: bytes, what: str) -> None:
    """atomic_write of `data`."""

    def write(tmp):
        with open(tmp, "wb") as f:
            f.write(data)

    atomic_write(path, write, what)


def _target(path: Path, what: str) -> Path:
    """The file a save to `path` replaces: a symbolic link's final target, in a folder that exists."""
    target = Path(os.path.realpath(path)) if path.is_symlink() else path
    if target.is_symlink():
        raise CheckpointError(f"cannot save the {what} to {str(path)!r}: its symbolic links form a loop")
    for folder in reversed(target.parents):
        if folder.exists() and not folder.is_dir():
            raise CheckpointError(
                f"cannot save the {what} to {str(path)!r}: {str(folder)!r} is a file, not a folder"
            )
    target.parent.mkdir(parents=True, exist_ok=True)
    return target


def _mode_to_keep(target: Path, path, what: str) -> int | None:
    """The permission bits of the regular file at `target`; None if there is none; refuse anything else."""
    try:
        st = os.lstat(target)
    except FileNotFoundError:
        return None
    if not stat.S_ISREG(st.st_mode):
        raise CheckpointError(
            f"will not save the {what} to {str(path)!r}: it is {_kind(st.st_mode)}; a save replaces "
            "only a regular file (or creates a new one)"
        )
    return stat.S_IMODE(st.st_mode)


def remove_stale_temps(target: Path) -> list[Path]:
    """Delete the temporary files that killed saves to `target` left behind; return them.

    A temporary file names the process that writes it; one whose process still runs is kept.
    """
    # ours: .<name>.<pid>-<hex>.tmp; older versions' (tempfile.mkstemp): .<name>.<8 of [a-z0-9_]>.tmp
    pattern = re.compile(rf"\.{re.escape(target.name)}\.(?:(\d+)-[0-9a-f]+|[a-z0-9_]{{8}})\.tmp")
    removed = []
    for candidate in target.parent.glob(f".{glob.escape(target.name)}.*.tmp"):
        match = pattern.fullmatch(candidate.name)
        if match is None or not _is_orphan(candidate, match.group(1)):
            continue
        with contextlib.suppress(FileNotFoundError):  # another save may have removed it first
            candidate.unlink()
            removed.append(candidate)
    return removed


def _is_orphan(tmp: Path, pid: str | None) -> bool:
    if pid is None:  # written by an older version, which did not record its process
        with contextlib.suppress(FileNotFoundError):
            return time.time() - tmp.stat().st_mtime > STALE_UNOWNED_TEMP_SECONDS
        return False
    return not _process_alive(int(pid))


def _process_alive(pid: int) -> bool:
    # our own pid: another thread's save; on Windows, os.kill would end the process instead of asking
    if pid == os.getpid() or os.name == "nt":
        return True
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except (ProcessLookupError, OverflowError):  # OverflowError: a number no process can have
        return False
    except OSError:  # e.g. PermissionError: it exists, under another user
        return True
    return True


def _fsync_folder(folder: Path) -> None:
    """Make the rename itself durable; some systems cannot open a folder, which is fine."""
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
