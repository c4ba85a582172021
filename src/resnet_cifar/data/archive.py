"""Fetch a release archive and unpack it, trusting neither the network nor the archive.

A download goes to a temporary file and takes its real name only once its
checksum (md5, or sha256 where that is what is published) matches, so an
interrupted or tampered download never looks like a good one.
Unpacking refuses members that could write outside the target folder (absolute
paths, `..`), links and device files, and works in a temporary folder that is
renamed into place at the end, so a damaged archive leaves nothing behind.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import tarfile
import tempfile
import urllib.error
import urllib.request
import zlib
from pathlib import Path, PurePosixPath

from tqdm import tqdm

from resnet_cifar.errors import UserError

_CHUNK = 1 << 20


def file_md5(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def download(url: str, target: Path, checksum: str, algorithm: str = "md5") -> None:
    """Save `url` as `target` if its digest (`algorithm`: md5 or sha256) is `checksum`, or raise UserError and leave
    `target` untouched."""
    target.parent.mkdir(parents=True, exist_ok=True)
    local_copy_hint = (f"download {target.name} yourself and pass --data-dir pointing at the archive "
                       "or at its extracted folder")
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
    tmp = Path(tmp_name)
    digest = hashlib.new(algorithm, usedforsecurity=False)
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=60) as response:
            total = int(response.headers.get("Content-Length") or 0) or None
            with tqdm(total=total, unit="B", unit_scale=True, desc=f"downloading {target.name}", disable=None) as bar:
                for chunk in iter(lambda: response.read(_CHUNK), b""):
                    out.write(chunk)
                    digest.update(chunk)
                    bar.update(len(chunk))
        if digest.hexdigest() != checksum:
            raise UserError(f"The file downloaded from {url} has {algorithm} {digest.hexdigest()} instead of {checksum}, "
                            f"so it was not kept; try again later, or {local_copy_hint}.")
        os.replace(tmp, target)
    except (urllib.error.URLError, OSError) as error:
        reason = getattr(error, "reason", None) or error
        raise UserError(f"Could not download {url} ({reason}); {local_copy_hint}.") from None
    finally:
        tmp.unlink(missing_ok=True)


def find_release(data_dir: Path, *, name: str, marker: str, folder: str, archive: str, url: str, checksum: str,
                 download_missing: bool, size: str = "") -> Path:
    """A release's extracted folder: `data_dir` itself when it holds the file `marker`, its `folder`/, or that
    folder unpacked from `archive` beside it, which `download_missing` first fetches (`size`: a note on its size)."""
    if (data_dir / marker).is_file():
        return data_dir
    if (data_dir / folder).is_dir():
        return data_dir / folder
    path = data_dir / archive
    if not path.is_file():
        if not download_missing:
            raise UserError(f"No {name} found in {data_dir}: expected {archive} or {folder}/ there; pass --download "
                            f"to fetch it{size}, or --data-dir pointing at a local copy.")
        download(url, path, checksum)
    return extract(path, folder)


def extract(archive: Path, top: str) -> Path:
    """Unpack `archive`, which must hold the folder `top`, beside itself; return that folder."""
    destination = archive.parent / top
    if not tarfile.is_tarfile(archive):  # say so here: tarfile's own error lists every compression it tried
        raise UserError(f"{archive} is not a tar archive (a failed download can leave a web page under its name); "
                        "delete it and download it again (--download) or copy it anew.")
    try:
        work = Path(tempfile.mkdtemp(prefix=f".{top}.", dir=archive.parent))
    except OSError as error:
        raise UserError(f"Cannot unpack {archive} into {archive.parent} ({error.strerror}); "
                        f"unpack it yourself somewhere writable and pass that folder as --data-dir.") from None
    try:
        with tarfile.open(archive, "r:*") as tar:
            for member in tar:
                _extract_member(tar, member, work, archive, top)
            # Read to the end of the compressed stream, so its checksum is verified
            # even where the damage lies after the last member.
            while tar.fileobj.read(_CHUNK):
                pass
        if not (work / top).is_dir():
            raise UserError(f"{archive} does not hold a {top}/ folder; is it the right archive?")
        os.replace(work / top, destination)
    except (tarfile.TarError, EOFError, zlib.error, OSError) as error:
        raise UserError(f"{archive} is truncated or damaged ({error}); delete it and download it again "
                        "(--download) or copy it anew.") from None
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return destination


def _extract_member(tar: tarfile.TarFile, member: tarfile.TarInfo, work: Path, archive: Path, top: str) -> None:
    name = PurePosixPath(member.name)
    if name.is_absolute() or ".." in name.parts:
        raise UserError(f"{archive} holds {member.name!r}, a path outside the archive's folder; refusing to unpack it.")
    if not (member.isfile() or member.isdir()):
        raise UserError(f"{archive} holds {member.name!r}, a link or device file, which a data archive never "
                        "needs; refusing to unpack it.")
    if name.parts[:1] != (top,):
        raise UserError(f"{archive} holds {member.name!r} outside {top}/; is it the right archive?")
    target = work.joinpath(*name.parts)
    if member.isdir():
        target.mkdir(parents=True, exist_ok=True)
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    source = tar.extractfile(member)
    with source, open(target, "wb") as out:
        shutil.copyfileobj(source, out, _CHUNK)
