"""Helpers shared by svcadm, svcs and svcprop: instance lookup and state."""

import os
import sys

from smartos_sim.common import zone_path

from . import fmri as fmrimod
from . import repository, volatile


def warn(tool, message):
    print(f"{tool}: {message}", file=sys.stderr)


def resolve(tool, data, patterns, multiple):
    """Walk operands as scf_walk_fmri does; return ``(fmris, error)``.

    ``multiple`` False: an abbreviation matching several instances is an error.
    """
    out, error = [], 0
    for pat in patterns:
        found = fmrimod.match_instances(data, pat)
        if not found:
            warn(tool, f"Pattern '{pat}' doesn't match any instances")
            error = 1
            continue
        if len(found) > 1 and not multiple and not fmrimod.is_glob(pat):
            warn(tool, f"Pattern '{pat}' matches multiple instances:")
            for f in found:
                print(f"    {f}", file=sys.stderr)
            error = 1
            continue
        out += [f for f in found if f not in out]
    return out, error


def is_enabled(data, vol, fmri):
    svc, inst = repository.lookup(data, fmri)
    if inst is None:
        return False
    return volatile.effective_enabled(vol, fmri, repository.persistent_enabled(svc, inst))


def dependency_pgs(data, fmri):
    svc, inst = repository.lookup(data, fmri)
    pgs = repository.running_pgs(svc, inst)
    for name, pg in sorted(pgs.items()):
        if pg.get("type") == "dependency":
            props = pg["props"]

            def first(key, default, props=props):
                return (props.get(key, {}).get("values") or [default])[0]

            yield (
                name,
                first("grouping", "require_all"),
                first("restart_on", "none"),
                first("type", "service"),
                props.get("entities", {}).get("values", []),
            )


def entity_instances(data, entity):
    sname, iname = repository.split_fmri(entity)
    svc = data["services"].get(sname)
    if svc is None:
        return []
    if iname is None:
        return [f"svc:/{sname}:{i}" for i in sorted(svc["instances"])]
    return [entity] if iname in svc["instances"] else []


def path_exists(entity):
    path = entity[len("file://") :]
    if path.startswith("localhost/"):
        path = path[len("localhost") :]
    return os.path.exists(zone_path(path))


def has_potential(data, vol, fmri, visited=None):
    """Whether ``fmri`` could come online (its dependencies could be satisfied)."""
    visited = set() if visited is None else visited
    if fmri in visited:
        return True
    visited.add(fmri)
    svc, inst = repository.lookup(data, fmri)
    if inst is None or not is_enabled(data, vol, fmri):
        return False
    if volatile.runtime(vol, fmri)["state"] == "maintenance":
        return False
    for _name, grouping, _ro, dtype, entities in dependency_pgs(data, fmri):
        if grouping not in ("require_all", "require_any"):
            continue
        results = []
        for ent in entities:
            if dtype == "path" or ent.startswith("file://"):
                results.append(path_exists(ent))
            else:
                insts = entity_instances(data, ent)
                results.append(any(has_potential(data, vol, i, visited) for i in insts))
        if grouping == "require_all" and not all(results):
            return False
        if grouping == "require_any" and results and not any(results):
            return False
    return True


def state_of(vol, fmri):
    rt = volatile.runtime(vol, fmri)
    return rt.get("state", "uninitialized"), rt.get("next_state", "none")
