"""
UCARP clusters of SmartOS zones: the pillar model and the state of the VIPs.

The clusters are described in pillar under ``ucarp:clusters`` (see the
formula's ``pillar.example``) and merged with the formula's defaults and the
optional ``ucarp:defaults``.  Everything is validated before anything is
applied: ``ucarp.validate`` lists every problem with its pillar path.

:depends: the ``ucarp_model`` util of this formula; ``vmadm`` and ``zlogin``
    for ``status``
:platform: SmartOS global zone
"""

import logging

from salt.exceptions import CommandExecutionError

log = logging.getLogger(__name__)

__virtualname__ = "ucarp"


def __virtual__():
    if "ucarp_model.normalise" in __utils__:
        return __virtualname__
    return (False, "ucarp: the formula's ucarp_model util is missing (run saltutil.sync_all)")


def _normalised():
    raw = __salt__["config.get"]("ucarp:clusters", {})
    defaults = __salt__["config.get"]("ucarp:defaults", {})
    return __utils__["ucarp_model.normalise"](raw, defaults)


def validate():
    """
    Check the ``ucarp`` pillar; return every problem with its pillar path.

    An empty list means the pillar is good.

    CLI Example:

    .. code-block:: bash

        salt 'gz*' ucarp.validate
    """
    return list(_normalised()[1])


def clusters():
    """
    Return the validated cluster model (defaults merged; passwords left out).

    A pillar with problems is an error that lists all of them.

    CLI Example:

    .. code-block:: bash

        salt gz1 ucarp.clusters
    """
    model, problems = _normalised()
    if problems:
        listing = "\n".join(f"  - {p}" for p in problems)
        raise CommandExecutionError(f"ucarp: the pillar has {len(problems)} problem(s), nothing applied:\n{listing}")
    return model


def plan(host=None):
    """
    Return what a global zone must run: its zones (vmadm payloads, SMF
    manifest) and its nodes (one per cluster and zone, with their files).

    host
        The global zone's minion id (this minion by default).

    CLI Example:

    .. code-block:: bash

        salt gz1 ucarp.plan
    """
    return __utils__["ucarp_model.host_plan"](clusters(), host or __opts__["id"])


def nodes(host=None):
    """
    Return the nodes a global zone hosts: ``{cluster: zone alias}`` pairs.

    CLI Example:

    .. code-block:: bash

        salt gz1 ucarp.nodes
    """
    return [{"cluster": n["cluster"], "zone": n["alias"]} for n in plan(host)["nodes"]]


def _holds(zone, vip):
    res = __salt__["zlogin.run"](zone, ["/usr/sbin/ifconfig", "-a"])
    return res["retcode"] == 0 and f"inet {vip} " in res["stdout"]


def last_transition(zone, cluster):
    """
    Return the last VIP transition a zone's hooks recorded for a cluster.

    ``{"seq", "time", "role", "cluster", "vip"}``, or None when there is none.

    CLI Example:

    .. code-block:: bash

        salt gz1 ucarp.last_transition zoneA web
    """
    path = f"{__utils__['ucarp_model.transitions_path'](cluster)}"
    res = __salt__["zlogin.run"](zone, ["sed", "-n", "$p", path])
    fields = res["stdout"].split()
    if res["retcode"] != 0 or len(fields) < 5:
        return None
    return {"seq": int(fields[0]), "time": int(fields[1]), "role": fields[2], "cluster": fields[3], "vip": fields[4]}


def status():
    """
    Return the state of this global zone's UCARP nodes.

    For each node: its zone and zone state, the SMF state of its instance,
    whether it holds the VIP now, and its last recorded transition.

    CLI Example:

    .. code-block:: bash

        salt 'gz*' ucarp.status
    """
    model = clusters()
    out = []
    for node in plan()["nodes"]:
        cluster = model[node["cluster"]]
        entry = {"cluster": node["cluster"], "zone": node["alias"], "vip": cluster["vip"], "vhid": cluster["vhid"]}
        try:
            entry["zone_state"] = __salt__["vmadm.state"](node["alias"])
        except CommandExecutionError as exc:
            entry.update(zone_state="absent", error=str(exc))
            out.append(entry)
            continue
        if entry["zone_state"] == "running":
            entry["service"] = __salt__["zlogin.svc_state"](node["alias"], node["fmri"])
            entry["holds_vip"] = _holds(node["alias"], cluster["vip"])
            entry["last_transition"] = last_transition(node["alias"], node["cluster"])
        else:
            entry.update(service=None, holds_vip=False, last_transition=None)
        out.append(entry)
    return out
