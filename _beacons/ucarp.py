"""
Deliver the VIP transitions recorded in this global zone's zones to the master.

The formula's hooks append each transition to
``/var/db/ucarp/<cluster>.transitions`` in the zone.  This beacon reads those
files from the global zone (no process per zone: plain reads below each
zone's root, never following a link the zone may have planted) and sends
every new line to the master as the event ``ucarp/<cluster>/<role>``, one at
a time, in order, waiting for the master to take it.  The health changes the
zone's agent records (``/var/db/ucarp/<cluster>.health``, with health checks
in pillar) go the same way as ``ucarp/<cluster>/health/<healthy|sick>``.  What the master did not
take (it is down, say) is sent again at the next interval.  What it took but
no reaction acknowledged (``ucarp.ack``, called by the master's runner) within
``ACK_WAIT`` seconds is sent again too, up to ``RESENDS`` times: the master's
reactor may still be starting when a restarted master takes the first
events, and the runner ignores a record it has already handled.  Nothing is
lost.  Where it has got to is kept in the minion's cache, per zone UUID and
cluster.

Enable it in pillar (or the minion config)::

    beacons:
      ucarp:
        - interval: 1

:depends: the ``ucarp`` and ``vmadm`` execution modules of this formula
:platform: SmartOS global zone
"""

import json
import logging
import os
import time

import salt.loader
import salt.version

try:
    import salt.channel.client as channel_client
except ImportError:  # Salt before 3005: refused in __virtual__, not a traceback
    channel_client = None

try:  # pip-installed as a Salt extension, whose utils Salt's loader does not read
    from saltext.ucarp.utils import zone_root as _packaged_zone_root
except ImportError:  # a formula: the util is synced and comes through __utils__
    _packaged_zone_root = None

log = logging.getLogger(__name__)

__virtualname__ = "ucarp"

ZONES_TTL = 30.0
SEND_TIMEOUT = 10
ACK_WAIT = 30.0  # seconds to wait for a reaction's ucarp.ack before sending a record again
RESENDS = 3  # then warn: the reactor is probably not set up on the master

_ZONES = {"at": 0.0, "by_alias": {}}
_UTILS = {}  # the utils loader, made on first use
_WAITING = {}  # cursor key -> the record sent and not yet acknowledged: seq, since, tries


def __virtual__():
    if salt.version.__version_info__ < (3006,) or channel_client is None:
        return (False, f"ucarp: needs Salt 3006 or newer, this is {salt.version.__version__}")
    return __virtualname__


def validate(config):
    """Validate the beacon configuration: a list of dicts (``interval``)."""
    if not isinstance(config, list):
        return False, "Configuration for the ucarp beacon must be a list (e.g. [{interval: 1}])"
    return True, "Valid beacon configuration"


def _cursor_path():
    return os.path.join(__opts__["cachedir"], "ucarp", "beacon-cursors.json")


def _load_cursors():
    try:
        with open(_cursor_path(), encoding="utf-8") as fh:
            return json.load(fh)
    except (OSError, ValueError):
        return {}


def _save_cursors(cursors):
    path = _cursor_path()
    os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
    tmp = f"{path}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(cursors, fh)
    os.replace(tmp, path)


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


def _zone_reader():
    """``zone_root.try_read``. Salt gives beacons no ``__utils__``: a formula's
    synced util is loaded once through Salt's utils loader."""
    if _packaged_zone_root:
        return _packaged_zone_root.try_read
    utils = globals().get("__utils__")
    if utils is None:
        if "loader" not in _UTILS:
            _UTILS["loader"] = salt.loader.utils(__opts__, whitelist=["zone_root"])
        utils = _UTILS["loader"]
    return utils["zone_root.try_read"]


def read_in_zone(root, path):
    """A record file at ``path`` below a zone's ``root``, as text, or None.

    Read with the formula's one zone-root reader (``_utils/zone_root.py``):
    no link followed at any level, regular files only, at most 1 MiB (the
    hooks keep records far below that). None when it is missing or refused.
    """
    outcome, data = _zone_reader()(root, path)
    if outcome != "ok":
        if outcome == "refused":
            log.warning("ucarp beacon: %s%s not read: %s", root, path, data)
        return None
    return data.decode("utf-8", errors="replace")


def _send(tag, data):
    """Fire ``tag`` on the master and wait until it has taken it."""
    load = {"id": __opts__["id"], "cmd": "_minion_event", "tag": tag, "data": data}
    try:
        with channel_client.ReqChannel.factory(__opts__) as channel:
            channel.send(load, tries=1, timeout=SEND_TIMEOUT)
    except Exception as exc:  # noqa: BLE001 - any failure means: not delivered, try again later
        log.info("ucarp beacon: the master did not take %s (%s); will send it again", tag, exc)
        return False
    return True


def beacon(config):
    """Send the new transitions of this global zone's UCARP nodes to the master."""
    try:
        watched = __salt__["ucarp.watch_list"]()
        zones = _zones()
        acked = __salt__["ucarp.acks"]()
    except Exception as exc:  # noqa: BLE001 - a bad pillar or a missing module must not stop the minion
        log.warning("ucarp beacon: nothing to watch yet: %s", exc)
        return []
    cursors = _load_cursors()
    for node in watched:
        if node["zone"] not in zones:
            continue
        uuid, root = zones[node["zone"]]
        text = read_in_zone(root, node["path"]) or ""
        items = __salt__["ucarp.parse_transitions"](text, node["cluster"], node["vip"])
        if not _deliver(node, uuid, f"{uuid}/{node['cluster']}", items, "role", cursors, acked):
            return []  # the master is away: keep the order, try again next time
        if node.get("health_path"):
            text = read_in_zone(root, node["health_path"]) or ""
            items = __salt__["ucarp.parse_health"](text, node["cluster"])
            if not _deliver(node, uuid, f"{uuid}/{node['cluster']}/health", items, "state", cursors, acked):
                return []
    return []


def _due_again(key, node, cursors, acked):
    """The record of ``key`` to send again, if any: the master took it, but no
    reaction has acknowledged it for ``ACK_WAIT`` seconds (at most ``RESENDS`` times).

    Sending the last record again is enough: the runner fills any gap before
    it from the zone's own record.
    """
    sent = cursors.get(key, 0)
    if acked.get(key, 0) >= sent:
        _WAITING.pop(key, None)
        return None
    wait = _WAITING.get(key)
    if wait is None or wait["seq"] != sent:
        _WAITING[key] = {"seq": sent, "since": time.monotonic(), "tries": 0}
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
            sent, key, node["cluster"], node["zone"], RESENDS + 1,
        )  # fmt: skip
    return None


def _deliver(node, uuid, key, items, kind, cursors, acked):
    """Send the records after the cursor ``key``, in order; False if the master did not take one.

    A transition is sent as ``ucarp/<cluster>/<role>``, a health change as
    ``ucarp/<cluster>/health/<state>``; ``ack`` in the data names the cursor
    for the reaction's acknowledgement.  The last record is sent again while
    no reaction acknowledges it (``_due_again``).
    """
    prefix = f"ucarp/{node['cluster']}/" + ("health/" if kind == "state" else "")

    def send(item):
        data = dict(item, cluster=node["cluster"], zone=node["zone"], zone_uuid=uuid, gz=__opts__["id"])
        data.update(vip=node["vip"], vhid=node["vhid"], ack=key)
        return _send(prefix + item[kind], data)

    again = _due_again(key, node, cursors, acked)
    for item in items:
        if item["seq"] == again:
            if not send(item):
                return False
            log.info("ucarp beacon: no reaction acknowledged %s record %s; sent it again", key, again)
            _WAITING[key].update(since=time.monotonic(), tries=_WAITING[key]["tries"] + 1)
        if item["seq"] <= cursors.get(key, 0):
            continue
        if not send(item):
            return False
        cursors[key] = item["seq"]
        _save_cursors(cursors)
        _WAITING[key] = {"seq": item["seq"], "since": time.monotonic(), "tries": 0}
    return True
