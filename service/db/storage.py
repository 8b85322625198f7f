"""Where the SQLite file lives: on a local disk, or on a network share (App Service Linux's /home).

SQLite's write-ahead log keeps its index in shared memory, and "all processes using a database must be
on the same host computer; WAL does not work over a network filesystem" (https://sqlite.org/wal.html,
"Overview", disadvantage 2). On App Service Linux /home is Azure Storage shared by every instance
(https://github.com/projectkudu/kudu/wiki/Understanding-the-Azure-App-Service-file-system), mounted over
SMB/CIFS; SQLite's byte-range locks on that mount are why SQLite apps there report "database is locked"
(OrchardCMS/OrchardCore#4600, MicrosoftDocs/azure-docs#47130, Azure/azure-sdk-for-python#6503).

So on a network filesystem the store uses the rollback journal (journal_mode=DELETE) and takes the
database lock once and keeps it (locking_mode=EXCLUSIVE): no shared memory, no lock traffic per
transaction on the share, and one process (one gunicorn worker) owning the file. A second process, or a
second instance, cannot take the file away from it: it answers 503 rather than corrupt anything.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from service.config import SqliteStorage

# Filesystem types (the third-to-last field group of /proc/self/mountinfo, see proc(5)) whose files are
# served by another machine. statfs magic numbers would need ctypes; mountinfo names the type as text.
NETWORK_FILESYSTEMS: Final = frozenset(
    {
        "cifs",
        "smb3",
        "smbfs",
        "nfs",
        "nfs4",
        "9p",
        "afs",
        "ceph",
        "glusterfs",
        "fuse.glusterfs",
        "fuse.sshfs",
        "fuse.blobfuse",
        "fuse.blobfuse2",
        "fuse.s3fs",
        "fuse.rclone",
        "davfs",
        "lustre",
        "gpfs",
        "ncpfs",
        "ocfs2",
    }
)
MOUNTINFO: Final = Path("/proc/self/mountinfo")


@dataclass(frozen=True)
class Mount:
    point: str
    fstype: str
    source: str


@dataclass(frozen=True)
class StorageMode:
    """What the store does with its file, and why (logged once at start-up, explained by the doctor)."""

    network: bool
    journal_mode: str
    locking_mode: str
    reason: str

    def describe(self) -> str:
        workers = "one worker process" if self.network else "any number of worker processes"
        return (
            f"SQLite journal_mode={self.journal_mode} locking_mode={self.locking_mode} ({workers}): "
            f"{self.reason}"
        )


_OCTAL = re.compile(r"\\([0-7]{3})")


def _unescape(field: str) -> str:
    # mountinfo writes space, tab, newline and backslash in paths as \040, \011, \012 and \134.
    return _OCTAL.sub(lambda match: chr(int(match.group(1), 8)), field)


def parse_mountinfo(text: str) -> list[Mount]:
    """The mounts listed in /proc/self/mountinfo text; malformed lines are skipped."""
    mounts = []
    for line in text.splitlines():
        fields = line.split(" ")
        if "-" not in fields[6:]:
            continue
        separator = fields.index("-", 6)
        if len(fields) < separator + 3 or len(fields) < 5:
            continue
        mounts.append(
            Mount(
                point=_unescape(fields[4]),
                fstype=fields[separator + 1],
                source=_unescape(fields[separator + 2]),
            )
        )
    return mounts


def mount_of(path: Path, mounts: list[Mount]) -> Mount | None:
    """The mount holding `path` (which need not exist yet): the last-listed longest mount point above it."""
    # Resolve symlinks in the part that exists; the rest (the file, its data directory) is created later.
    existing, missing = path.absolute(), []
    while not existing.exists() and existing != existing.parent:
        missing.append(existing.name)
        existing = existing.parent
    resolved = str(existing.resolve().joinpath(*reversed(missing)))
    best: Mount | None = None
    for mount in mounts:
        point = mount.point.rstrip("/") or "/"
        inside = resolved == point or resolved.startswith(point + "/") or point == "/"
        # Later lines are later mounts: on an equal point, the last one is what the path sees.
        if inside and (best is None or len(point) >= len(best.point.rstrip("/") or "/")):
            best = mount
    return best


def storage_mode(path: Path, setting: SqliteStorage, *, mountinfo: str | None = None) -> StorageMode:
    """The mode for the SQLite file at `path`, from SQLITE_STORAGE and, when auto, the file's mount."""
    if setting is SqliteStorage.NETWORK:
        return _network("SQLITE_STORAGE=network")
    if setting is SqliteStorage.LOCAL:
        return _local("SQLITE_STORAGE=local")
    try:
        text = mountinfo if mountinfo is not None else MOUNTINFO.read_text(encoding="utf-8", errors="replace")
    except OSError as error:
        return _local(f"mounts unreadable ({error.strerror}); assumed a local disk")
    mount = mount_of(path, parse_mountinfo(text))
    if mount is None:
        return _local("no mount found for the file; assumed a local disk")
    where = f"{mount.fstype} filesystem at {mount.point}"
    if mount.fstype in NETWORK_FILESYSTEMS:
        return _network(
            f"{path} is on a network share ({where}); WAL does not work over a network filesystem"
        )
    return _local(f"{path} is on a local {where}")


def _network(reason: str) -> StorageMode:
    return StorageMode(network=True, journal_mode="delete", locking_mode="exclusive", reason=reason)


def _local(reason: str) -> StorageMode:
    return StorageMode(network=False, journal_mode="wal", locking_mode="normal", reason=reason)


def worker_count(requested: int, mode: StorageMode) -> int:
    """How many gunicorn workers the mode allows: one on a network share (the exclusive lock's owner)."""
    return 1 if mode.network else requested
