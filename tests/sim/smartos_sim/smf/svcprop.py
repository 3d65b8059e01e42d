"""svcprop(1): print property values of an instance or service."""

import getopt
import sys

from . import fmri as fmrimod
from . import repository, volatile

USAGE = """Usage: svcprop [-fqtv] [-C | -c | -s snapshot] [-z zone] [-p [name/]name]...
         {FMRI | pattern}...
       svcprop -w [-fqtv] [-z zone] [-p [name/]name] {FMRI | pattern}"""


def escape(value, ptype):
    if ptype not in ("astring", "ustring", "opaque"):
        return value
    if value == "":
        return '""'
    out = []
    for ch in value:
        if ch in ' \t\n"\\':
            out.append("\\")
        out.append(ch)
    return "".join(out)


def restarter_pg(fmri):
    vol = volatile.load()
    rt = volatile.runtime(vol, fmri)
    props = {
        "state": repository.prop("astring", rt.get("state", "uninitialized")),
        "next_state": repository.prop("astring", rt.get("next_state", "none")),
        "auxiliary_state": repository.prop("astring", rt.get("aux_state", "none")),
        "logfile": repository.prop("astring", repository.log_path(fmri)),
    }
    if rt.get("stime"):
        props["state_timestamp"] = repository.prop("time", f"{rt['stime']:.6f}")
    if rt.get("marker"):
        props["contract"] = repository.prop("count", rt["ctid"])
    if rt.get("start_pid"):
        props["start_pid"] = repository.prop("count", rt["start_pid"])
    pgs = {"restarter": {"type": "framework", "props": props}}
    ovr = vol["overrides"].get(fmri)
    if ovr is not None:
        pgs["general_ovr"] = {
            "type": "framework",
            "props": {"enabled": repository.prop("boolean", str(ovr).lower())},
        }
    return pgs


def entity_pgs(data, entity, composed):
    svc, inst = repository.lookup(data, entity)
    if inst is None:
        return svc.get("pgs", {})
    pgs = repository.compose(svc, inst) if composed else repository.running_pgs(svc, inst)
    pgs.update(restarter_pg(entity))
    return pgs


def main(argv):
    try:
        opts, operands = getopt.getopt(argv, "fqtvcCs:p:z:w")
    except getopt.GetoptError as exc:
        print(f"svcprop: illegal option -- {exc.opt}", file=sys.stderr)
        print(USAGE, file=sys.stderr)
        return 2
    flags = {o for o, _ in opts}
    wanted = [v for o, v in opts if o == "-p"]
    if not operands:
        print(USAGE, file=sys.stderr)
        return 2
    quiet = "-q" in flags
    data = repository.load()
    status = 0
    entities = []
    for pat in operands:
        found = fmrimod.match_entity(data, pat, prefer_instances=True)
        if not found:
            if not quiet:
                print(f"svcprop: Pattern '{pat}' doesn't match any entities", file=sys.stderr)
            status = 1
        entities += found
    multi = len(wanted) > 1 or len(entities) > 1 or "-t" in flags or "-f" in flags
    out = []
    for entity in entities:
        kind = "instance" if repository.split_fmri(entity)[1] else "service"
        pgs = entity_pgs(data, entity, composed="-c" in flags or "-C" in flags)

        def line(pgname, pname, p, entity=entity, full=False):
            vals = " ".join(escape(v, p["type"]) for v in p["values"])
            name = f"{entity}/:properties/{pgname}/{pname}" if "-f" in flags else f"{pgname}/{pname}"
            return f"{name} {p['type']} {vals}" if full else vals

        if not wanted:
            for pgname in sorted(pgs):
                for pname in sorted(pgs[pgname]["props"]):
                    out.append(line(pgname, pname, pgs[pgname]["props"][pname], full=True))
            continue
        for spec in wanted:
            pgname, _, pname = spec.partition("/")
            pg = pgs.get(pgname)
            if not pname:
                if pg is None:
                    if not quiet:
                        print(
                            f"svcprop: Couldn't find property group `{pgname}' for {kind} `{entity}'.",
                            file=sys.stderr,
                        )
                    status = 1
                    continue
                for p in sorted(pg["props"]):
                    out.append(line(pgname, p, pg["props"][p], full=True))
                continue
            p = pg["props"].get(pname) if pg else None
            if p is None:
                if not quiet:
                    print(
                        f"svcprop: Couldn't find property `{spec}' for {kind} `{entity}'.",
                        file=sys.stderr,
                    )
                status = 1
                continue
            out.append(line(pgname, pname, p, full=multi))
    if not quiet:
        for text in out:
            print(text)
    return status
