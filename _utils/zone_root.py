"""
Read a zone's files from the global zone, under the zone's root, safely.

A SmartOS zone's files lie under ``<zonepath>/root`` in the global zone, so
reading them there costs no process (``zlogin`` costs one per file).  The
zone owns those files: a symlink, a FIFO or a huge file planted there must
not make the global zone read one of its own files, block, or run out of
memory.  So every read here:

- walks the path one component at a time from the zone root with
  ``O_NOFOLLOW`` (a symlink at any level is refused, including one swapped
  in during the walk);
- opens the file ``O_NONBLOCK`` and takes it only if ``fstat`` says it is a
  regular file (a FIFO, device or directory is refused);
- takes at most ``MAX_SIZE`` bytes (a bigger file is refused, not cut).

A refusal raises ``Refused`` and the caller reads the file through
``zlogin`` instead, where the zone resolves its own links.  Nothing is ever
written this way: writes go through ``zlogin``.

Pure functions, no Salt calls: the ``zlogin`` and ``ucarp`` execution
modules and the ``ucarp`` beacon share them.
"""

import errno
import os
import stat

MAX_SIZE = 1 << 20  # bytes: options, passfiles, hooks, records and manifests are far smaller


class Refused(Exception):  # noqa: N818 - a reason, not a failure of this code
    """The file is not read here: a link, not a regular file, too big, or unreadable."""


class Missing(Refused):
    """Nothing is at that path under the zone root."""


def _parts(path):
    if not isinstance(path, str) or not path.startswith("/") or "\0" in path:
        raise Refused(f"{path!r} is not an absolute path")
    parts = [p for p in path.split("/") if p]
    if not parts or any(p in (".", "..") for p in parts):
        raise Refused(f"{path!r} is not a normalised path to a file")
    return parts


def _open(root, path):
    """An fd of the regular file ``path`` below ``root`` and its ``fstat``."""
    parts = _parts(path)
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as exc:
        raise Refused(f"cannot open the zone root {root}: {exc.strerror}") from None
    try:
        for part in parts[:-1]:
            nxt = os.open(part, flags | os.O_DIRECTORY, dir_fd=fd)
            os.close(fd)
            fd = nxt
        ffd = os.open(parts[-1], flags | os.O_NONBLOCK, dir_fd=fd)
    except OSError as exc:
        if exc.errno == errno.ENOENT:
            raise Missing(f"{path}: no such file") from None
        if exc.errno in (errno.ELOOP, errno.ENOTDIR):
            raise Refused(f"{path}: a symbolic link or a non-directory on the way") from None
        raise Refused(f"{path}: {exc.strerror}") from None
    finally:
        os.close(fd)
    info = os.fstat(ffd)
    if not stat.S_ISREG(info.st_mode):
        os.close(ffd)
        raise Refused(f"{path}: not a regular file")
    return ffd, info


def read(root, path, max_size=MAX_SIZE):
    """The bytes of the regular file ``path`` (absolute, in the zone) below ``root``.

    Raises ``Missing`` when nothing is there and ``Refused`` for a link, a
    file that is not regular, or one bigger than ``max_size``.
    """
    fd, info = _open(root, path)
    with os.fdopen(fd, "rb") as fh:
        if info.st_size > max_size:
            raise Refused(f"{path}: {info.st_size} bytes, more than {max_size}")
        data = fh.read(max_size + 1)
    if len(data) > max_size:
        raise Refused(f"{path}: more than {max_size} bytes")
    return data


def stat_file(root, path):
    """``{"type", "mode", "uid", "gid", "size"}`` of the regular file ``path`` below ``root``.

    Raises as ``read`` does (a link or a non-regular file is refused).
    """
    fd, info = _open(root, path)
    os.close(fd)
    return {
        "type": "file",
        "mode": f"{stat.S_IMODE(info.st_mode):04o}",
        "uid": info.st_uid,
        "gid": info.st_gid,
        "size": info.st_size,
    }


def entries(root, path):
    """The names in the directory ``path`` below ``root`` (no link followed on the way)."""
    parts = _parts(path)
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_DIRECTORY
    try:
        fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as exc:
        raise Refused(f"cannot open the zone root {root}: {exc.strerror}") from None
    try:
        for part in parts:
            nxt = os.open(part, flags, dir_fd=fd)
            os.close(fd)
            fd = nxt
        return sorted(os.listdir(fd))
    except OSError as exc:
        if exc.errno == errno.ENOENT:
            raise Missing(f"{path}: no such directory") from None
        raise Refused(f"{path}: {exc.strerror or 'not a directory'}") from None
    finally:
        os.close(fd)


def _outcome(fun, *args):
    try:
        return "ok", fun(*args)
    except Missing as exc:
        return "missing", str(exc)
    except Refused as exc:
        return "refused", str(exc)


def try_read(root, path):
    """``("ok", bytes)``, ``("missing", why)`` or ``("refused", why)``: ``read`` for
    callers that reach this module through Salt's loader (no exception classes)."""
    return _outcome(read, root, path)


def try_stat(root, path):
    """``stat_file`` as ``try_read`` gives ``read``."""
    return _outcome(stat_file, root, path)


def try_entries(root, path):
    """``entries`` as ``try_read`` gives ``read``."""
    return _outcome(entries, root, path)
