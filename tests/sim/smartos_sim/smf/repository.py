"""The persistent SMF repository (``/etc/svc/repository.json``).

Layout::

    {"services": {"network/ucarp": {
        "pgs": {"start": {"type": "method",
                          "props": {"exec": {"type": "astring", "values": ["..."]}}}},
        "instances": {"web": {"pgs": {...}, "snapshot": {...} or null}}}}}

Property values are kept as strings.  ``snapshot`` is the instance's
"running" snapshot: the composed properties as of the last refresh, which
is what svc.startd and ``svcprop`` (without ``-c``) use.
"""

import copy

from smartos_sim.common import zone_path

from .jsonstore import read_json, updating

RESTARTER_FMRI = "svc:/system/svc/restarter:default"

# Properties read live rather than from the running snapshot.
LIVE_PGS = ("general", "general_ovr", "restarter", "restarter_actions")

# Instances every zone has, online as soon as the restarter runs.
BUILTINS = {
    "system/svc/restarter": "svc.startd master restarter",
    "system/filesystem/minimal": "minimal file system mounts",
    "system/filesystem/local": "local file system mounts",
    "network/loopback": "loopback network interface",
    "network/physical": "physical network interfaces",
    "milestone/network": "Network milestone",
    "milestone/name-services": "name services milestone",
    "milestone/single-user": "single-user milestone",
    "milestone/multi-user": "multi-user milestone",
    "milestone/multi-user-server": "multi-user plus exports milestone",
}


def repo_path():
    return zone_path("etc/svc/repository.json")


def prop(ptype, *values):
    return {"type": ptype, "values": [str(v) for v in values]}


def _builtin_service(desc):
    return {
        "pgs": {
            "tm_common_name": {"type": "template", "props": {"C": prop("ustring", desc)}},
            "startd": {"type": "framework", "props": {"duration": prop("astring", "transient")}},
            "start": {
                "type": "method",
                "props": {
                    "exec": prop("astring", ":true"),
                    "timeout_seconds": prop("count", 3),
                    "type": prop("astring", "method"),
                },
            },
            "stop": {
                "type": "method",
                "props": {
                    "exec": prop("astring", ":true"),
                    "timeout_seconds": prop("count", 3),
                    "type": prop("astring", "method"),
                },
            },
        },
        "instances": {
            "default": {
                "pgs": {"general": {"type": "framework", "props": {"enabled": prop("boolean", "true")}}},
                "snapshot": None,
            }
        },
    }


def _initial():
    services = {name: _builtin_service(desc) for name, desc in BUILTINS.items()}
    for svc in services.values():
        for inst in svc["instances"].values():
            inst["snapshot"] = compose(svc, inst)
    return {"services": services}


def load():
    """The repository, created with the built-in instances at first use."""
    data = read_json(repo_path(), None)
    if data is None:
        with updating(repo_path(), _initial):
            pass
        data = read_json(repo_path(), _initial)
    return data


def updated():
    """Context manager yielding the repository for a read-modify-write."""
    load()
    return updating(repo_path(), _initial)


def compose(svc, inst):
    """Composed view of an instance's property groups (instance wins per property)."""
    pgs = copy.deepcopy(svc.get("pgs", {}))
    for name, pg in inst.get("pgs", {}).items():
        if name in pgs:
            pgs[name]["type"] = pg["type"]
            pgs[name]["props"].update(copy.deepcopy(pg["props"]))
        else:
            pgs[name] = copy.deepcopy(pg)
    return pgs


def take_snapshot(svc, inst):
    """Refresh: the running snapshot becomes the current composed view."""
    inst["snapshot"] = {n: pg for n, pg in compose(svc, inst).items() if n not in LIVE_PGS}


def running_pgs(svc, inst):
    """What svc.startd uses: the running snapshot plus the live groups."""
    pgs = copy.deepcopy(inst.get("snapshot") or compose(svc, inst))
    live = compose(svc, inst)
    for name in LIVE_PGS:
        if name in live:
            pgs[name] = live[name]
    return pgs


def get_value(pgs, pgname, propname, default=None):
    pg = pgs.get(pgname)
    if not pg:
        return default
    p = pg["props"].get(propname)
    if not p or not p["values"]:
        return default
    return p["values"][0]


def instances(data):
    """Yield ``(fmri, service name, instance name)`` for every instance."""
    for sname in sorted(data["services"]):
        for iname in sorted(data["services"][sname]["instances"]):
            yield f"svc:/{sname}:{iname}", sname, iname


def split_fmri(fmri):
    """``svc:/a/b:c`` -> ``("a/b", "c")``; a service FMRI gives ``("a/b", None)``."""
    body = fmri[len("svc:/") :] if fmri.startswith("svc:/") else fmri.lstrip("/")
    if ":" in body:
        s, i = body.split(":", 1)
        return s, i
    return body, None


def lookup(data, fmri):
    """``(service dict, instance dict or None)`` for an exact FMRI, or ``(None, None)``."""
    sname, iname = split_fmri(fmri)
    svc = data["services"].get(sname)
    if svc is None:
        return None, None
    if iname is None:
        return svc, None
    inst = svc["instances"].get(iname)
    if inst is None:
        return None, None
    return svc, inst


def persistent_enabled(svc, inst):
    return get_value(compose(svc, inst), "general", "enabled", "false") == "true"


def log_path(fmri):
    sname, iname = split_fmri(fmri)
    return zone_path("var/svc/log", f"{sname.replace('/', '-')}:{iname}.log")
