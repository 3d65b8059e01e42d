"""JSON files shared between processes, guarded by an fcntl lock file."""

import contextlib
import fcntl
import json
import os
import tempfile


def read_json(path, default):
    """Read ``path`` (replaced atomically by writers, so no lock is needed)."""
    try:
        with open(path, encoding="utf-8") as fh:
            return json.load(fh)
    except FileNotFoundError:
        return default() if callable(default) else default
    except ValueError:
        return default() if callable(default) else default


def write_json(path, data):
    """Replace ``path`` atomically with ``data``."""
    directory = os.path.dirname(path)
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(data, fh, indent=1, sort_keys=True)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def locked(path):
    """Hold an exclusive lock on ``path + '.lock'`` for a read-modify-write."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path + ".lock", "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


@contextlib.contextmanager
def updating(path, default):
    """Yield the data of ``path`` under the lock and write it back on success."""
    with locked(path):
        data = read_json(path, default)
        yield data
        write_json(path, data)
