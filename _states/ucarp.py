"""
Formula-level state of the UCARP clusters on one global zone.

``ucarp.identity_kept`` refuses to change what the nodes of a running
cluster must share (password, VIP, VHID) one node at a time: a node on a
new password does not hear its peers and takes the VIP too. Such a change
goes through ``salt-run ucarp.rollout <cluster>``.

``ucarp.pruned`` removes from this hypervisor's zones what pillar no longer
asks for: the SMF instance of a cluster that is gone (or that moved away
from a zone), its options file, its passfile and its transition log; and,
in a zone left with no cluster at all, the hooks, the method and the
manifest too.  Zones are never deleted: they may hold the application's
data.

:depends: the ``ucarp``, ``vmadm`` and ``zlogin`` execution modules
:platform: SmartOS global zone
"""

import hashlib
import logging
import re

import salt.utils.data
from salt.exceptions import CommandExecutionError, SaltInvocationError

try:  # pip-installed as a Salt extension, whose utils Salt's loader does not read
    from saltext.ucarp.utils.run_cache import begin as _packaged_begin
except ImportError:  # a formula: the util is synced and comes through __utils__
    _packaged_begin = None

log = logging.getLogger(__name__)


def _run():
    """Open this state run's store of what the zones said (``_utils/run_cache.py``)."""
    owner = globals().get("__instance_id__")  # Salt sets it for each state run
    if owner:
        (_packaged_begin or __utils__["run_cache.begin"])(__context__, owner)


__virtualname__ = "ucarp"

ZONE_BRANDS = ("joyent", "joyent-minimal")
SHARED_OPTIONS = ("addr", "vhid")  # with the password: what every node of a cluster must agree on
ROLLOUT_KEY = "ucarp_rollout"  # pillar the rollout runner passes: the cluster it changes


def __virtual__():
    if "ucarp.plan" in __salt__ and "zlogin.run" in __salt__:
        return __virtualname__
    return (False, "ucarp: needs the ucarp, vmadm and zlogin execution modules (SmartOS global zone)")


def _options(text):
    """``{name: value}`` of the ``--name=value`` lines of an options file."""
    found = {}
    for line in (text or "").splitlines():
        match = re.match(r"^--([a-z]+)=(.*)$", line.strip())
        if match:
            found[match.group(1)] = match.group(2)
    return found


def identity_kept(name, zone, conf_path, conf, pass_path, password_key, fmri):
    """
    Refuse to change, one node at a time, what the nodes of a running
    cluster share: its password, VIP or VHID.

    CARP authenticates adverts with the password over the VHID and VIP: a
    node restarted with a new one does not hear its peers and takes the VIP
    too, so the cluster has two masters until every node has changed. When
    the cluster's instance runs in ``zone`` and its passfile or the
    ``--addr`` / ``--vhid`` of its options differ from pillar, this state
    fails, and the node's files (which require it) are not written; the
    comment says to run ``salt-run ucarp.rollout <cluster>``, which changes
    every node in a safe order (and passes ``ucarp_rollout: <cluster>`` in
    pillar, which lets a new password through). A new VIP or VHID is a new
    cluster and is always refused. It runs before the zone is updated (a
    new VIP would change its ``allowed_ips``). A node whose zone or
    instance does not run has nothing to protect. The password is compared
    by digest, never read back or shown.

    name
        The cluster.

    zone, conf_path, conf, pass_path, password_key, fmri
        The node, as ``ucarp.plan`` gives it.

    .. code-block:: yaml

        ucarp-identity-kept-web-web-a:
          ucarp.identity_kept:
            - name: web
            - zone: web-a
            - ...
    """
    _run()
    ret = {"name": name, "changes": {}, "result": True, "comment": ""}
    try:
        running = __salt__["vmadm.lookup"](alias=zone, state="running", order="uuid")
        if not running or __salt__["zlogin.svc_state"](running[0]["uuid"], fmri) not in ("online", "degraded"):
            ret["comment"] = f"{fmri} does not run in zone {zone}: nothing to protect"
            return ret
        zone_uuid = running[0]["uuid"]
        changed = []
        rollout = __salt__["config.get"](ROLLOUT_KEY) == name
        password = salt.utils.data.traverse_dict_and_list(__pillar__, password_key, None)
        if password is not None and not rollout:
            wanted = hashlib.sha256(str(password).encode("utf-8")).hexdigest()
            if __salt__["zlogin.file_hash"](zone_uuid, pass_path) not in (None, wanted):
                changed.append("password")
        have = _options(__salt__["zlogin.file_read"](zone_uuid, conf_path))  # it runs: its options are there
        want = _options(conf)
        changed += [{"addr": "VIP", "vhid": "VHID"}[k] for k in SHARED_OPTIONS if k in have and have[k] != want.get(k)]
    except (CommandExecutionError, SaltInvocationError) as exc:
        ret["result"] = False
        ret["comment"] = str(exc)
        return ret
    if not changed:
        ret["comment"] = f"Cluster {name} keeps its password, VIP and VHID in zone {zone}"
        return ret
    what = " and ".join(changed)
    ret["result"] = False
    if changed == ["password"]:
        remedy = f"Change it on every node in a safe order with salt-run ucarp.rollout {name}"
    else:
        remedy = (
            "A new VIP or VHID is a new cluster: add it beside this one, move the clients, then remove this one "
            "(README: 'Moving to a new VIP or VHID')"
        )
    ret["comment"] = (
        f"Cluster {name} runs in zone {zone} and its {what} would change here alone: a node whose {what} differs "
        f"from its peers' does not hear them and takes the VIP too. {remedy} (nothing was written for this node)"
    )
    return ret


def pruned(name):
    """
    Remove the UCARP instances and files pillar no longer asks for.

    name
        Any name (the state's ID); every running OS zone of this global zone
        is looked at.

    .. code-block:: yaml

        ucarp-clean-pruned:
          ucarp.pruned:
            - name: ucarp
    """
    _run()
    ret = {"name": name, "changes": {}, "result": True, "comment": ""}
    try:
        plan = __salt__["ucarp.plan"]()
        service = plan["service"]
        wanted = {zone["alias"]: set(zone["fmris"]) for zone in plan["zones"]}
        zones = __salt__["vmadm.list"](fields="uuid,alias,state,brand", keyed=False)
        work = {}
        for vm in zones:
            if vm["state"] != "running" or vm["brand"] not in ZONE_BRANDS:
                continue
            zone = vm["alias"] or vm["uuid"]
            stale = sorted(set(__salt__["zlogin.svc_instances"](vm["uuid"], service)) - wanted.get(vm["alias"], set()))
            if stale:
                work[zone] = (vm["uuid"], stale, vm["alias"] not in wanted)
        if not work:
            ret["comment"] = "Nothing to remove: every UCARP instance is in pillar"
            return ret
        for zone, (uuid, stale, whole) in work.items():
            change = {"instances": stale}
            node_files = __salt__["ucarp.files"]
            # An instance of the formula's service is named after its cluster.
            gone = [fmri.removeprefix(f"{service}:") for fmri in stale]
            files = [f for cluster in gone for f in node_files(cluster).values()]
            if whole:
                files += plan["hooks"] + [plan["manifest_path"]]
            change["files"] = files
            if not __opts__["test"]:
                for fmri in stale:
                    __salt__["zlogin.svc_disable"](uuid, fmri)
                    __salt__["zlogin.svc_delete"](uuid, fmri)
                removed = [f for f in files if __salt__["zlogin.file_remove"](uuid, f)]
                change["files"] = removed
                if whole and not __salt__["zlogin.svc_instances"](uuid, service):
                    __salt__["zlogin.svc_delete"](uuid, service)
            ret["changes"][zone] = change
        count = sum(len(c["instances"]) for c in ret["changes"].values())
        if __opts__["test"]:
            ret["result"] = None
            ret["comment"] = f"Would remove {count} UCARP instance(s) no longer in pillar"
        else:
            ret["comment"] = f"Removed {count} UCARP instance(s) no longer in pillar"
    except (CommandExecutionError, SaltInvocationError) as exc:
        ret["result"] = False
        ret["comment"] = str(exc)
    return ret
