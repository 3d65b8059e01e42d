"""ZFS-style snapshots of a zone's files, for vmadm's ``*-snapshot`` commands.

On SmartOS ``vmadm create-snapshot <uuid> <name>`` takes the ZFS snapshot
``zones/<uuid>@vmsnap-<name>`` of the zone's dataset, whose files are then
seen at ``<zonepath>/.zfs/snapshot/vmsnap-<name>/``. Here that directory
holds a copy of the zone's root tree (``root/``) as it was: file types
(symlinks kept as links and never followed; devices, FIFOs and overlayfs'
whiteouts as nodes), hard links, contents, owners, modes, extended
attributes (overlayfs' opaque markers among them) and times. A rollback puts
such a copy back in place of the zone's root; a destroy removes it.
Unlike ZFS, a snapshot of a running zone is not atomic: it is a copy made
while the zone may write.

The zone's tree is read through directory descriptors opened with
``O_NOFOLLOW``: a symlink the zone puts where a directory or a file was
cannot make the copy read the global zone's files.
"""

import datetime
import errno
import os
import shutil
import stat

from . import gz
from .common import ToolError

PREFIX = "vmsnap-"  # what vmadm's snapshots are called in ZFS (VM.js)
DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC


def path(uuid, name):
    """Where the snapshot ``name`` of a zone keeps its files."""
    return os.path.join(gz.zone_dir(uuid), ".zfs", "snapshot", PREFIX + name)


def creation():
    """A snapshot's ``created_at`` as vmadm shows it: ZFS's ``creation``
    has a resolution of a second."""
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def take(uuid, name):
    """Snapshot a zone's root tree as ``name``; returns the bytes it takes."""
    final = path(uuid, name)
    partial = f"{final}.{os.getpid()}.partial"
    for stale in (final, partial):  # what a command killed half-way left
        shutil.rmtree(stale, ignore_errors=True)
    os.makedirs(partial, mode=0o700)
    try:
        used = copy_tree(os.path.join(gz.zone_dir(uuid), "root"), os.path.join(partial, "root"))
        os.rename(partial, final)
    except OSError as exc:
        shutil.rmtree(partial, ignore_errors=True)
        raise ToolError(f"cannot create snapshot 'zones/{uuid}@{PREFIX}{name}': {exc.strerror}", 1) from None
    return used


def restore(uuid, name):
    """Put the snapshot ``name`` back as the zone's root tree (the zone is down)."""
    zdir = gz.zone_dir(uuid)
    root = os.path.join(zdir, "root")
    new, old = (os.path.join(zdir, f".root.{os.getpid()}.{what}") for what in ("new", "old"))
    try:
        copy_tree(os.path.join(path(uuid, name), "root"), new)
        os.rename(root, old)
        os.rename(new, root)
    except OSError as exc:
        shutil.rmtree(new, ignore_errors=True)
        raise ToolError(f"cannot rollback to 'zones/{uuid}@{PREFIX}{name}': {exc.strerror}", 1) from None
    shutil.rmtree(old, ignore_errors=True)


def destroy(uuid, name):
    shutil.rmtree(path(uuid, name), ignore_errors=True)


def copy_tree(src, dst):
    """Copy the directory ``src`` to ``dst`` (which must not exist), keeping
    what a snapshot keeps; returns the bytes the copied inodes take on disk."""
    st = os.lstat(src)
    if not stat.S_ISDIR(st.st_mode):
        raise NotADirectoryError(20, os.strerror(20), src)
    fd = os.open(src, DIR_FLAGS)
    try:
        return _copy_dir(fd, dst, os.fstat(fd), {})
    finally:
        os.close(fd)


def _copy_dir(fd, dst, st, links):
    """Copy the directory open as ``fd`` (and all below it) to ``dst``."""
    os.mkdir(dst, 0o700)
    used = st.st_blocks * 512
    for entry in os.scandir(fd):
        used += _copy_entry(fd, entry.name, os.path.join(dst, entry.name), links)
    _copy_meta(dst, st, fd)
    return used


def _copy_entry(parent, name, dst, links):
    """Copy the entry ``name`` of the directory open as ``parent``; one that
    a running zone removes meanwhile is left out, as if it had gone first."""
    try:
        return _copy_node(parent, name, dst, links)
    except FileNotFoundError:
        if os.path.isdir(dst) and not os.path.islink(dst):
            shutil.rmtree(dst)
        elif os.path.lexists(dst):
            os.unlink(dst)
        return 0


def _copy_node(parent, name, dst, links):
    st = os.stat(name, dir_fd=parent, follow_symlinks=False)
    if stat.S_ISDIR(st.st_mode):
        fd = os.open(name, DIR_FLAGS, dir_fd=parent)
        try:
            return _copy_dir(fd, dst, os.fstat(fd), links)
        finally:
            os.close(fd)
    key = (st.st_dev, st.st_ino)
    if st.st_nlink > 1 and key in links:  # a hard link to what is copied already
        os.link(links[key], dst, follow_symlinks=False)
        return 0
    if stat.S_ISREG(st.st_mode):
        st = _copy_file(parent, name, dst)
    elif stat.S_ISLNK(st.st_mode):
        os.symlink(os.readlink(name, dir_fd=parent), dst)
        _copy_meta(dst, st, f"/proc/self/fd/{parent}/{name}")
    else:  # character and block devices (whiteouts are 0:0), FIFOs, sockets
        os.mknod(dst, stat.S_IFMT(st.st_mode) | 0o600, st.st_rdev)
        _copy_meta(dst, st, f"/proc/self/fd/{parent}/{name}")
    if st.st_nlink > 1:
        links[key] = dst
    return st.st_blocks * 512


def _copy_file(parent, name, dst):
    """Copy a regular file's contents and metadata; returns its stat."""
    try:
        fd = os.open(name, FILE_FLAGS, dir_fd=parent)
    except OSError as exc:
        if exc.errno == errno.ELOOP:  # a symlink now: never followed
            raise _changed(name) from None
        raise
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise _changed(name)
        with open(fd, "rb", closefd=False) as fsrc, open(dst, "xb") as fdst:
            shutil.copyfileobj(fsrc, fdst)
        _copy_meta(dst, st, fd)
    finally:
        os.close(fd)
    return st


def _changed(name):
    return OSError(errno.EAGAIN, f"{name} was replaced while it was copied")


def _copy_meta(dst, st, src):
    """Give ``dst`` the owner, mode, extended attributes and times of ``st``
    (``src``, an open descriptor or a path whose last part is not followed,
    to read the attributes from). In this order: chown clears set-id bits,
    and file capabilities, which are an extended attribute."""
    link = stat.S_ISLNK(st.st_mode)
    os.chown(dst, st.st_uid, st.st_gid, follow_symlinks=False)
    if not link:  # a symlink's mode is always 0777
        os.chmod(dst, stat.S_IMODE(st.st_mode))
    follow = isinstance(src, int)
    for attr in os.listxattr(src, follow_symlinks=follow):
        value = os.getxattr(src, attr, follow_symlinks=follow)
        os.setxattr(dst, attr, value, follow_symlinks=False)
    os.utime(dst, ns=(st.st_atime_ns, st.st_mtime_ns), follow_symlinks=False)
