"""
Deliver the records kept in this global zone's zones to the master.

The formula's hooks append each VIP transition to
``/var/db/ucarp/<cluster>.transitions`` in the zone, and its agent each health
change to ``/var/db/ucarp/<cluster>.health`` (with health checks in pillar),
through ``ucarp-record``.  This beacon reads those files from the global zone
(no process per zone: plain reads below each zone's root, never following a
link the zone may have planted) and sends every new record to the master,
one at a time, in order, waiting for the master to take it: a transition as
``ucarp/<cluster>/<role>``, a health change as
``ucarp/<cluster>/health/<healthy|sick>``.  The record kinds, keys, tags and
the cursor that says what is new (a record file that went back starts a new
epoch: its new records are sent, its old ones never again) come from the
formula's model (``ucarp_model``), which the master's runner uses too.

What the master did not take (it is down, say) is sent again at the next
interval.  What it took but no reaction acknowledged (``ucarp.ack``, called
by the master's runner once the hypervisor has confirmed the record) within
``ACK_WAIT`` seconds is sent again too, up to ``RESENDS`` times: the master's
reactor may still be starting when a restarted master takes the first
events, and the runner ignores a record it has already handled.  Nothing is
lost.  Where it has got to is kept in the minion's cache, per record key
(``<zone uuid>/<cluster>/<kind>``).

Enable it in pillar (or the minion config)::

    beacons:
      ucarp:
        - interval: 1

Salt runs beacons once a second at most.  For delivery within a tenth of a
second, add the formula's ``ucarp`` engine to the minion config as well
(``_engines/ucarp.py``): the beacon writes what it watches to the minion's
cache (``watch_path``), and the engine looks at those files ten times a
second and sends what is new through this module's ``deliver``.  The two
never send the same record: whoever delivers holds a lock on the cursors
(``cursor_lock``), and the other skips its turn.

:depends: the ``ucarp`` and ``vmadm`` execution modules of this formula
:platform: SmartOS global zone
"""

import fcntl
import functools
import json
import logging
import os
import time

import salt.loader
import salt.minion
import salt.version

try:
    import salt.channel.client as channel_client
except ImportError:  # Salt before 3005: refused in __virtual__, not a traceback
    channel_client = None

try:  # pip-installed as a Salt extension, whose utils Salt's loader does not read
    from saltext.ucarp.utils import ucarp_model as _packaged_model
    from saltext.ucarp.utils import zone_root as _packaged_zone_root
except ImportError:  # a formula: the utils are synced and come through Salt's utils loader
    _packaged_model = _packaged_zone_root = None

log = logging.getLogger(__name__)

__virtualname__ = "ucarp"

ZONES_TTL = 30.0
SEND_TIMEOUT = 10
ACK_WAIT = 30.0  # seconds to wait for a reaction's ucarp.ack before sending a record again
RESENDS = 3  # then warn: the reactor is probably not set up on the master

_ZONES = {"at": 0.0, "by_alias": {}}
_UTILS = {}  # the utils loader, made on first use
_WAITING = {}  # cursor key -> the record sent and not yet acknowledged: seq, since, tries
_WATCH = {}  # the nodes last written to watch_path
_MASTER = {}  # the options with the master's address, in a process forked before the minion connected


def __virtual__():
    if salt.version.__version_info__ < (3006,) or channel_client is None:
        return (False, f"ucarp: needs Salt 3006 or newer, this is {salt.version.__version__}")
    return __virtualname__


def validate(config):
    """Validate the beacon configuration: a list of dicts (``interval``)."""
    if not isinstance(config, list):
        return False, "Configuration for the ucarp beacon must be a list (e.g. [{interval: 1}])"
    return True, "Valid beacon configuration"


def _util(module, name):
    """A function of the formula's utils (``zone_root``, ``ucarp_model``).  Salt
    gives beacons no ``__utils__``: a formula's synced utils are loaded once
    through Salt's utils loader."""
    packaged = {"zone_root": _packaged_zone_root, "ucarp_model": _packaged_model}[module]
    if packaged:
        return getattr(packaged, name)
    utils = globals().get("__utils__")
    if utils is None:
        if "loader" not in _UTILS:
            _UTILS["loader"] = salt.loader.utils(__opts__, whitelist=["zone_root", "ucarp_model"])
        utils = _UTILS["loader"]
    return utils[f"{module}.{name}"]


def _state_dir():
    return os.path.join(__opts__["cachedir"], "ucarp")


def _cursor_path():
    return os.path.join(_state_dir(), "beacon-cursors.json")


def watch_path():
    """The file where the beacon says what it watches, for the ``ucarp`` engine."""
    return os.path.join(_state_dir(), "beacon-watch.json")


class cursor_lock:  # noqa: N801 - used as a context manager, like a function
    """The right to deliver (read the cursors, send, save them), held by one
    process at a time: the minion's beacon or its engine.  Taken without
    waiting; ``held`` says whether it was (the other is delivering)."""

    def __enter__(self):
        os.makedirs(_state_dir(), mode=0o700, exist_ok=True)
        self.fd = os.open(os.path.join(_state_dir(), "beacon-cursors.lock"), os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            self.held = True
        except BlockingIOError:
            self.held = False
        return self

    def __exit__(self, *exc):
        os.close(self.fd)  # releases the lock


def _load_cursors():
    """The beacon's cursor per record key (``ucarp_model.record_key``);
    cursors kept before record kinds and epochs were named are taken over."""
    try:
        with open(_cursor_path(), encoding="utf-8") as fh:
            found = json.load(fh)
    except (OSError, ValueError):
        return {}
    cursors = {}
    for given, value in found.items() if isinstance(found, dict) else ():
        key, cur = _util("ucarp_model", "migrated_record_key")(given), _util("ucarp_model", "cursor")(value)
        if key is not None and cur is not None:
            cursors[key] = cur
    return cursors


def _write_json(path, data):
    """Write ``data`` to ``path`` at once (a new file, renamed), readable by root only."""
    os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
    tmp = f"{path}.tmp.{os.getpid()}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(data, fh)
    os.replace(tmp, path)


def _save_cursors(cursors):
    _write_json(_cursor_path(), cursors)


def _publish_watch(nodes):
    """Keep ``watch_path`` up to date with ``nodes`` (rewritten only when they change)."""
    if _WATCH.get("nodes") == nodes and os.path.exists(watch_path()):
        return
    _write_json(watch_path(), {"nodes": nodes})
    _WATCH["nodes"] = nodes


def _zones():
    """Alias -> (uuid, zone root) of this global zone's VMs (one vmadm, cached).

    A stopped zone's files are still there: what its hooks wrote before it
    stopped is delivered too.
    """
    if time.monotonic() - _ZONES["at"] > ZONES_TTL:
        found = {}
        for vm in __salt__["vmadm.list"](fields="uuid,alias,zonepath", keyed=False):
            if vm.get("alias") and vm.get("zonepath"):
                found[vm["alias"]] = (vm["uuid"], os.path.join(vm["zonepath"], "root"))
        _ZONES.update(at=time.monotonic(), by_alias=found)
    return _ZONES["by_alias"]


def read_in_zone(root, path):
    """A record file at ``path`` below a zone's ``root``, as text, or None.

    Read with the formula's one zone-root reader (``_utils/zone_root.py``):
    no link followed at any level, regular files only, at most 1 MiB (the
    hooks keep records far below that). None when it is missing or refused.
    """
    outcome, data = _util("zone_root", "try_read")(root, path)
    if outcome != "ok":
        if outcome == "refused":
            log.warning("ucarp beacon: %s%s not read: %s", root, path, data)
        return None
    return data.decode("utf-8", errors="replace")


def _channel_opts():
    """The minion's options with the master's address, which a request
    channel needs: the minion sets it once connected, but the engine's
    process was forked before that, so it resolves it once itself."""
    if "master_uri" in __opts__:
        return __opts__
    if "opts" not in _MASTER:
        opts = dict(__opts__, retry_dns=0)
        if isinstance(opts.get("master"), list):  # several masters: the first, as the minion tries them
            opts["master"] = opts["master"][0]
        opts.update(salt.minion.resolve_dns(opts, fallback=False))
        _MASTER["opts"] = opts
    return _MASTER["opts"]


def _send(tag, data):
    """Fire ``tag`` on the master and wait until it has taken it."""
    load = {"id": __opts__["id"], "cmd": "_minion_event", "tag": tag, "data": data}
    try:
        with channel_client.ReqChannel.factory(_channel_opts()) as channel:
            channel.send(load, tries=1, timeout=SEND_TIMEOUT)
    except Exception as exc:  # noqa: BLE001 - any failure means: not delivered, try again later
        log.info("ucarp beacon: the master did not take %s (%s); will send it again", tag, exc)
        return False
    return True


def beacon(config):
    """Send the new records of this global zone's UCARP nodes to the master."""
    try:
        watched = __salt__["ucarp.watch_list"]()
        zones = _zones()
        acked = __salt__["ucarp.acks"]()
    except Exception as exc:  # noqa: BLE001 - a bad pillar or a missing module must not stop the minion
        log.warning("ucarp beacon: nothing to watch yet: %s", exc)
        return []
    nodes = [
        dict(node, uuid=zones[node["zone"]][0], root=zones[node["zone"]][1])
        for node in watched
        if node["zone"] in zones
    ]
    _publish_watch(nodes)
    _send_new(nodes, acked, "beacon")
    return []


def deliver(nodes):
    """
    Send the new records of ``nodes`` (entries of ``watch_path``) to the
    master, as the beacon does: the ``ucarp`` engine calls this when their
    files change.  Records sent before and not yet acknowledged are left to
    the beacon.

    True when every new record was taken, False when the master did not take
    one (the rest wait, in order), None when the beacon is delivering now.

    CLI Example (from the ``ucarp`` engine, through Salt's beacons loader):

    .. code-block:: python

        beacons["ucarp.deliver"](nodes)
    """
    return _send_new(nodes, None, "engine")


def _send_new(nodes, acked, via):
    """Deliver every node's new records (and, with ``acked``, what waits for
    an acknowledgement), holding ``cursor_lock``; ``via`` (``beacon`` or
    ``engine``) goes in each event."""
    with cursor_lock() as lock:
        if not lock.held:
            return None  # the engine is delivering: the next turn sends what it leaves
        cursors = _load_cursors()
        for node in nodes:
            for kind in _util("ucarp_model", "record_kinds")():  # transitions first: they matter most
                path = node["records"].get(kind)
                if not path:
                    continue
                text = read_in_zone(node["root"], path) or ""
                records = _util("ucarp_model", "parse_records")(kind, text, node["cluster"], node["vip"])
                if not _deliver(node, kind, records, cursors, acked, via):
                    return False  # the master is away: keep the order, try again next time
    return True


def _due_again(key, node, cursors, acked):
    """The record of ``key`` to send again, if any (``{"epoch", "seq"}``):
    the master took it, but no reaction has acknowledged it for
    ``ACK_WAIT`` seconds (at most ``RESENDS`` times).

    Sending the last record again is enough: the master asks the zone's
    hypervisor for every record after its own cursor.
    """
    cur = cursors.get(key)
    if cur is None:
        return None
    sent = {"epoch": cur["epoch"], "seq": cur["seq"]}
    if _util("ucarp_model", "covers")(acked.get(key), sent):
        _WAITING.pop(key, None)
        return None
    wait = _WAITING.get(key)
    if wait is None or wait["sent"] != sent:
        _WAITING[key] = {"sent": sent, "since": time.monotonic(), "tries": 0}
        return None
    if time.monotonic() - wait["since"] < ACK_WAIT:
        return None
    if wait["tries"] < RESENDS:
        return sent
    if wait["tries"] == RESENDS:
        wait["tries"] += 1
        log.warning(
            "ucarp beacon: the master took record %s of %s (cluster %s, zone %s) but no reaction acknowledged it "
            "after %s sends: is the formula's reactor set up on the master?",
            sent["seq"], key, node["cluster"], node["zone"], RESENDS + 1,
        )  # fmt: skip
    return None


def _deliver(node, kind, records, cursors, acked, via="beacon"):
    """Send the records the cursor has not taken, in order; False if the master did not take one.

    Each goes as ``ucarp_model.record_tag`` says (``ucarp/<cluster>/<role>``,
    ``ucarp/<cluster>/health/<state>``), with its kind and record key
    (``ack``).  The last record is sent again while no reaction
    acknowledges it (``_due_again``).
    """
    model = functools.partial(_util, "ucarp_model")
    uuid = node["uuid"]
    key = model("record_key")(uuid, node["cluster"], kind)

    def send(record):
        data = dict(record, kind=kind, cluster=node["cluster"], zone=node["zone"], zone_uuid=uuid)
        data.update(gz=__opts__["id"], vip=node["vip"], vhid=node["vhid"], ack=key, via=via)
        return _send(model("record_tag")(kind, node["cluster"], record), data)

    again = None if acked is None else _due_again(key, node, cursors, acked)
    if again is not None:
        for record in records:
            if (record["epoch"], record["seq"]) == (again["epoch"], again["seq"]):
                if not send(record):
                    return False
                log.info("ucarp beacon: no reaction acknowledged %s record %s; sent it again", key, again["seq"])
                _WAITING[key].update(since=time.monotonic(), tries=_WAITING[key]["tries"] + 1)
    for record in model("records_after")(records, cursors.get(key)):
        if not send(record):
            return False
        cursors[key] = model("advance")(cursors.get(key), record)
        _save_cursors(cursors)
        _WAITING[key] = {"sent": {"epoch": record["epoch"], "seq": record["seq"]}, "since": time.monotonic(),
                         "tries": 0}  # fmt: skip
    return True
