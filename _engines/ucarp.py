"""
Deliver UCARP transitions to the master within a tenth of a second.

Salt runs beacons once a second at most, and a reaction waits for the
``ucarp`` beacon to see the record of a transition: half a second on
average, a whole second at worst.  This engine, one process per hypervisor,
looks at the record files the beacon watches every ``interval`` seconds
(a ``stat`` each: no process, nothing read) and, as soon as one changes,
has the beacon's own code send what is new (``ucarp.deliver``: the same
reader, events and cursors; a lock keeps the two from sending a record
twice).  The beacon still runs: it keeps the list of files up to date from
pillar (``ucarp.watch_list``, in the minion's cache), sends again what no
reaction acknowledged, and delivers everything itself if the engine is not
running.

Enable it in the minion config (engines start with the minion: restart it
once the formula's modules are synced)::

    engines:
      - ucarp:
          interval: 0.1

:depends: the formula's ``ucarp`` beacon (enabled, see ``_beacons/ucarp.py``)
:platform: SmartOS global zone
"""

import json
import logging
import os
import time

import salt.loader
import salt.version

log = logging.getLogger(__name__)

__virtualname__ = "ucarp"

DEFAULT_INTERVAL = 0.1  # seconds between two looks at the record files
INTERVAL_RANGE = (0.02, 5.0)
RETRY_WAIT = 1.0  # seconds before trying again when the master did not take a record
LOADER_WAIT = 5.0  # seconds before looking again for the beacon's module (not synced yet)
LOADER_TTL = 60.0  # seconds before loading the beacon's module again


def __virtual__():
    if salt.version.__version_info__ < (3006,):
        return (False, f"ucarp: needs Salt 3006 or newer, this is {salt.version.__version__}")
    return __virtualname__


def _interval(value):
    """``value`` as seconds between looks, or ValueError naming what is wrong."""
    low, high = INTERVAL_RANGE
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"ucarp engine: interval must be a number of seconds, not {value!r}") from None
    if not low <= seconds <= high:
        raise ValueError(f"ucarp engine: interval must be between {low} and {high} seconds, not {value!r}")
    return seconds


def _signature(path):
    """What says a file changed: device, inode, size and modification time (None: no file)."""
    try:
        st = os.lstat(path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


def _record_files(node):
    """The node's record files as paths in the global zone."""
    return [os.path.join(node["root"], path.lstrip("/")) for _kind, path in sorted(node["records"].items())]


class Watcher:
    """The beacon's list of nodes and the last look at their record files."""

    def __init__(self, beacon):
        self.beacon = beacon  # (now) -> the beacon's (watch list path, deliver), or None while it is not there
        self.list_seen = None
        self.nodes = []
        self.seen = {}  # node key -> the signatures its records were delivered at
        self.retry_at = 0.0

    def _load_list(self, path):
        """Read the beacon's list of nodes again if the file changed."""
        sig = _signature(path)
        if sig == self.list_seen:
            return
        try:
            with open(path, encoding="utf-8") as fh:
                nodes = json.load(fh).get("nodes")
        except (OSError, ValueError, AttributeError) as exc:
            if sig is not None:
                log.warning("ucarp engine: %s not read: %s", path, exc)
            nodes = None
        self.nodes = [n for n in nodes if _well_formed(n)] if isinstance(nodes, list) else []
        self.list_seen = sig
        keep = {_key(n) for n in self.nodes}
        self.seen = {k: v for k, v in self.seen.items() if k in keep}

    def look(self, now):
        """One look: deliver the records of the nodes whose files changed.
        The nodes found changed (empty: nothing to do)."""
        if now < self.retry_at:
            return []
        found = self.beacon(now)
        if found is None:
            self.retry_at = now + LOADER_WAIT
            return []
        list_path, deliver = found
        self._load_list(list_path)
        changed = []
        for node in self.nodes:
            sigs = [_signature(f) for f in _record_files(node)]
            if self.seen.get(_key(node)) != sigs:
                changed.append((node, sigs))
        if not changed:
            return []
        done = deliver([node for node, _sigs in changed])
        if done is True:
            for node, sigs in changed:
                self.seen[_key(node)] = sigs  # as they were before the read: a later change is seen next time
        elif done is False:
            self.retry_at = now + RETRY_WAIT  # the master did not take a record
        return changed


def _key(node):
    return (node["uuid"], node["cluster"])


def _well_formed(node):
    return (
        isinstance(node, dict)
        and all(isinstance(node.get(k), str) for k in ("zone", "uuid", "root", "cluster", "vip"))
        and isinstance(node.get("vhid"), int)
        and isinstance(node.get("records"), dict)
        and all(isinstance(p, str) for p in node["records"].values())
    )


def _beacon():
    """``(now) ->`` the formula's ``ucarp`` beacon as Salt's beacons loader
    gives it: the path of its watch list and its ``deliver``, loaded again
    every ``LOADER_TTL`` seconds (a sync may bring a new one); None while it
    is not there (modules not synced yet)."""
    state = {"found": None, "at": 0.0}

    def get(now):
        if state["found"] is None or now - state["at"] > LOADER_TTL:
            loader = salt.loader.beacons(__opts__, __salt__)
            if "ucarp.deliver" not in loader:
                log.info("ucarp engine: the ucarp beacon is not there yet (saltutil.sync_beacons)")
                return None
            state.update(found=(loader["ucarp.watch_path"](), loader["ucarp.deliver"]), at=now)
        return state["found"]

    return get


def start(interval=DEFAULT_INTERVAL):
    """
    Look at the ``ucarp`` beacon's record files every ``interval`` seconds
    and deliver what is new as soon as a file changes.

    CLI Example (the minion's config):

    .. code-block:: yaml

        engines:
          - ucarp:
              interval: 0.1
    """
    seconds = _interval(interval)
    watcher = Watcher(_beacon())
    log.info("ucarp engine: looking at the record files every %ss", seconds)
    while True:
        began = time.monotonic()
        try:
            watcher.look(began)
        except Exception:  # noqa: BLE001 - the beacon still delivers; keep looking
            log.exception("ucarp engine: a look at the record files failed")
            watcher.retry_at = began + RETRY_WAIT
        time.sleep(max(0.0, began + seconds - time.monotonic()))
