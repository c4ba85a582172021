"""Files written whole or not at all, and one sentence saying why when the system refuses.

A file is first written under a temporary name beside its target,
`.NAME.tmpPID`, and renamed over the target once complete: a crash, a Ctrl-C
or a full disk never leaves half a file under the real name. The process id in
the temporary name tells which temporaries were left by a process that was
killed mid-write, so they can be removed later without touching a live
writer's.
"""
from __future__ import annotations

import contextlib
import errno
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

from resnet_cifar.errors import UserError

_TEMPORARY = re.compile(r"^\..+\.tmp(\d+)$")


def temporary_beside(path: Path) -> Path:
    return path.with_name(f".{path.name}.tmp{os.getpid()}")


def process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, and belongs to another user
        return True
    return True


def remove_stale_temporaries(folder: Path) -> None:
    """Delete the temporaries in `folder` whose writing process no longer exists."""
    if not folder.is_dir():
        return
    for entry in folder.iterdir():
        match = _TEMPORARY.match(entry.name)
        if match and entry.is_file() and not process_exists(int(match[1])):
            with contextlib.suppress(OSError):  # a read-only folder, say: leaving it costs only space
                entry.unlink(missing_ok=True)


def cannot_write(path: Path, error: OSError, folder: Path | None = None) -> UserError:
    """The sentence for an OSError met while creating `path` (or, given, `folder` on its way): path, reason, fix."""
    code = error.errno
    if code in (errno.ENOSPC, errno.EDQUOT):
        reason = "the disk is full; free some space or choose another disk"
    elif code == errno.EROFS:
        reason = "the file system is read-only; choose a writable folder"
    elif code in (errno.EACCES, errno.EPERM):
        reason = "permission denied; choose a folder you may write to"
    elif code == errno.ENOENT and (folder or path.parent).is_dir():
        reason = f"{folder or path.parent} does not take new files; choose an ordinary folder"
    else:
        reason = f"{error.strerror or error}"
    return UserError(f"Cannot write {path}: {reason}.")


def _nearest_folder(path: Path, target: Path) -> Path:
    """The deepest existing folder on the way to `path`; a UserError when a file stands in the way of `target`."""
    for ancestor in (path, *path.parents):
        if ancestor.exists():
            if not ancestor.is_dir():
                raise UserError(f"Cannot write {target}: {ancestor} is a file, not a folder.")
            return ancestor
    return Path.cwd()


def make_folder(folder: Path) -> None:
    """Create `folder` and its parents, or raise a UserError naming the file in the way or the reason."""
    _nearest_folder(folder, folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise cannot_write(folder, error) from None


def check_writable(path: Path) -> None:
    """Fail now, in one sentence, rather than after minutes of work, when the file `path` cannot be created.

    A file is briefly created in the deepest existing folder on the way, which
    proves the rest can be made there; nothing is left behind, no folder either.
    """
    folder = _nearest_folder(path.parent, path)
    probe = temporary_beside(folder / path.name)
    try:
        probe.open("wb").close()
    except OSError as error:
        raise cannot_write(path, error, folder) from None
    probe.unlink()


class _RecordingWriter:
    """A file for torch.save that keeps the OSError behind torch's own RuntimeError.

    torch.save reports a full disk as "enforce fail at inline_container.cc"; the
    OSError it swallowed says what happened.
    """

    def __init__(self, file: BinaryIO):
        self.file = file
        self.error: OSError | None = None

    def write(self, data: bytes) -> int:
        try:
            return self.file.write(data)
        except OSError as error:
            self.error = error
            raise

    def flush(self) -> None:
        self.file.flush()


def save_atomically(obj: Any, path: Path) -> None:
    """torch.save `obj` to `path` in one step; on failure `path` is as it was and no temporary is left."""
    import torch  # here, so that importing this module stays cheap for commands that never save tensors

    def save(file: BinaryIO) -> None:
        writer = _RecordingWriter(file)
        try:
            torch.save(obj, writer)
        except RuntimeError:
            if writer.error is None:
                raise
            raise writer.error from None

    _replace(path, save)


def write_atomically(path: Path, data: bytes) -> None:
    """Replace `path` by `data` in one step; on failure `path` is as it was and no temporary is left."""
    _replace(path, lambda file: file.write(data))


def _replace(path: Path, write: Callable[[BinaryIO], Any]) -> None:
    tmp = temporary_beside(path)
    try:
        with open(tmp, "wb") as f:
            write(f)
        os.replace(tmp, path)
    except OSError as error:
        raise cannot_write(path, error) from None
    finally:
        with contextlib.suppress(OSError):  # it may never have been created
            tmp.unlink(missing_ok=True)
