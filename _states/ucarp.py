"""
Formula-level state of the UCARP clusters on one global zone.

``ucarp.pruned`` removes from this hypervisor's zones what pillar no longer
asks for: the SMF instance of a cluster that is gone (or that moved away
from a zone), its options file, its passfile and its transition log; and,
in a zone left with no cluster at all, the hooks, the method and the
manifest too.  Zones are never deleted: they may hold the application's
data.

:depends: the ``ucarp``, ``vmadm`` and ``zlogin`` execution modules
:platform: SmartOS global zone
"""

import logging

from salt.exceptions import CommandExecutionError, SaltInvocationError

log = logging.getLogger(__name__)

__virtualname__ = "ucarp"

ZONE_BRANDS = ("joyent", "joyent-minimal")


def __virtual__():
    if "ucarp.plan" in __salt__ and "zlogin.run" in __salt__:
        return __virtualname__
    return (False, "ucarp: needs the ucarp, vmadm and zlogin execution modules (SmartOS global zone)")


def _instances(zone, service):
    """The ucarp instances SMF knows in a zone (a set of FMRIs)."""
    res = __salt__["zlogin.run"](zone, ["svcs", "-H", "-o", "fmri", f"{service}:*"])
    if res["retcode"] != 0:
        if "doesn't match any instances" in res["stderr"]:
            return set()
        raise CommandExecutionError(f"zone {zone}: svcs failed: {res['stderr'].strip()}")
    return set(res["stdout"].split())


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
    ret = {"name": name, "changes": {}, "result": True, "comment": ""}
    service = "svc:/network/ucarp"
    try:
        plan = __salt__["ucarp.plan"]()
        wanted = {zone["alias"]: set(zone["fmris"]) for zone in plan["zones"]}
        zones = __salt__["vmadm.list"](fields="uuid,alias,state,brand", keyed=False)
        work = {}
        for vm in zones:
            if vm["state"] != "running" or vm["brand"] not in ZONE_BRANDS:
                continue
            zone = vm["alias"] or vm["uuid"]
            stale = sorted(_instances(vm["uuid"], service) - wanted.get(vm["alias"], set()))
            if stale:
                work[zone] = (vm["uuid"], stale, vm["alias"] not in wanted)
        if not work:
            ret["comment"] = "Nothing to remove: every UCARP instance is in pillar"
            return ret
        for zone, (uuid, stale, whole) in work.items():
            change = {"instances": stale}
            node_files = __salt__["ucarp.files"]
            files = [f for fmri in stale for f in node_files(fmri.rsplit(":", 1)[1]).values()]
            if whole:
                files += plan["hooks"] + [plan["manifest_path"]]
            change["files"] = files
            if not __opts__["test"]:
                for fmri in stale:
                    __salt__["zlogin.svc_disable"](uuid, fmri)
                    __salt__["zlogin.svc_delete"](uuid, fmri)
                removed = [f for f in files if __salt__["zlogin.file_remove"](uuid, f)]
                change["files"] = removed
                if whole and not _instances(uuid, service):
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
