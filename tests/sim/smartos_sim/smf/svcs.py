"""svcs(1): list service instances, explain (-x), long listing (-l), processes (-p)."""

import getopt
import signal
import sys
import time

from . import contracts, inzone, repository, volatile
from .svcctl import dependency_pgs, entity_instances, is_enabled, path_exists, resolve, state_of

MSGBASE = "http://illumos.org/msg/SMF-8000-"
STATE_ORDER = ["legacy_run", "uninitialized", "disabled", "online", "degraded", "offline", "maintenance"]
WIDTHS = {"zone": 36, "state": 14, "nstate": 14, "stime": 8, "ctid": 6, "svc": 14, "inst": 14, "fmri": 0, "desc": 40}
HEADERS = {
    "zone": "ZONE",
    "state": "STATE",
    "nstate": "NSTATE",
    "stime": "STIME",
    "ctid": "CTID",
    "svc": "SVC",
    "inst": "INST",
    "fmri": "FMRI",
    "desc": "DESC",
}
USAGE = """Usage: svcs [-aHpv?] [-o col[,col]...] [-R restarter] [-sS col] [-Z | -z zone ]
            [<service> ...]
       svcs -d | -D [-Hpv?] [-o col[,col]...] [-sS col] [-Z | -z zone ]
            [<service> ...]
       svcs [-l | -L] [-Z | -z zone] <service> ...
       svcs -x [-v] [-Z | -z zone] [<service> ...]
       svcs -?"""


def stime_text(t):
    if not t:
        return "-"
    now = time.time()
    if now - t < 24 * 3600:
        return time.strftime("%H:%M:%S", time.localtime(t))
    if now - t < 365 * 24 * 3600:
        return time.strftime("%b_%d", time.localtime(t))
    return time.strftime("%Y", time.localtime(t))


def common_name(data, fmri):
    svc, inst = repository.lookup(data, fmri)
    pgs = repository.compose(svc, inst)
    return repository.get_value(pgs, "tm_common_name", "C")


class Row:
    def __init__(self, data, vol, fmri):
        self.fmri = fmri
        self.rt = volatile.runtime(vol, fmri)
        self.state, self.nstate = state_of(vol, fmri)
        self.sname, self.iname = repository.split_fmri(fmri)
        self.enabled = is_enabled(data, vol, fmri)
        self.desc = common_name(data, fmri) or "-"

    def col(self, name):
        if name == "state":
            return self.state + ("*" if self.nstate != "none" else "")
        if name == "nstate":
            return "-" if self.nstate == "none" else self.nstate
        if name == "stime":
            return stime_text(self.rt.get("stime"))
        if name == "ctid":
            return str(self.rt["ctid"]) if self.rt.get("marker") else "-"
        return {"fmri": self.fmri, "svc": self.sname, "inst": self.iname, "desc": self.desc}[name]

    def key(self, name):
        if name == "state":
            return STATE_ORDER.index(self.state) if self.state in STATE_ORDER else 99
        if name == "stime":
            return self.rt.get("stime") or 0
        if name == "ctid":
            return self.rt.get("ctid") or 0
        return self.col(name)


def format_row(cols, values):
    parts = []
    for i, (c, v) in enumerate(zip(cols, values, strict=True)):
        last = i == len(cols) - 1
        if c == "ctid":
            parts.append(v.rjust(WIDTHS[c]))
        elif last or not WIDTHS[c]:
            parts.append(v)
        else:
            parts.append(v.ljust(WIDTHS[c]))
    return " ".join(parts).rstrip()


def print_procs(row):
    for pid in contracts.members(row.rt.get("marker")):
        started = contracts.start_time(pid)
        print(f"{'':14} {stime_text(started):<8} {pid:>7} {contracts.comm(pid)}")


def long_listing(data, vol, row):
    out = [("fmri", row.fmri)]
    if row.desc != "-":
        out.append(("name", row.desc))
    enabled = "true" if row.enabled else "false"
    if row.rt.get("temporary") or vol["overrides"].get(row.fmri) is not None:
        pers = repository.persistent_enabled(*repository.lookup(data, row.fmri))
        if pers != row.enabled:
            enabled += " (temporary)"
    out += [
        ("enabled", enabled),
        ("state", row.state),
        ("next_state", row.nstate),
        ("state_time", time.strftime("%a %b %d %H:%M:%S %Y", time.localtime(row.rt.get("stime") or 0))),
        ("logfile", repository.log_path(row.fmri)),
        ("restarter", repository.RESTARTER_FMRI),
    ]
    if row.rt.get("marker"):
        out.append(("contract_id", str(row.rt["ctid"])))
    for _name, grouping, restart_on, dtype, entities in dependency_pgs(data, row.fmri):
        for ent in entities:
            if dtype == "path" or ent.startswith("file://"):
                st = "online" if path_exists(ent) else "absent"
            else:
                insts = entity_instances(data, ent)
                st = ", ".join(state_of(vol, i)[0] for i in insts) if insts else "absent"
            out.append(("dependency", f"{grouping}/{restart_on} {ent} ({st})"))
    for k, v in out:
        print(f"{k:<12} {v}")
    for pid in contracts.members(row.rt.get("marker")):
        print(f"{'process':<12} {pid} {contracts.comm(pid)}")


def summary(vol, fmri):
    state, nstate = state_of(vol, fmri)
    if state in ("online", "degraded"):
        return "is running."
    if state == "disabled":
        return "is disabled."
    if state == "maintenance":
        return "requires maintenance."
    if state == "offline":
        return "is starting." if nstate == "online" else "is offline."
    return "is uninitialized."


def dependents_down(data, vol, fmri):
    out = []
    for other, _s, _i in repository.instances(data):
        if other == fmri or not is_enabled(data, vol, other):
            continue
        if state_of(vol, other)[0] in ("online", "degraded"):
            continue
        for _n, grouping, _ro, _t, entities in dependency_pgs(data, other):
            if grouping in ("require_all", "require_any") and any(fmri in entity_instances(data, e) for e in entities):
                out.append(other)
                break
    return out


def reasons(data, vol, row):
    rt = row.rt
    aux = rt.get("aux_state", "none")
    lines = []
    if row.state == "disabled":
        if row.rt.get("temporary"):
            lines.append(("Reason: Temporarily disabled by an administrator.", "1S"))
        else:
            lines.append(("Reason: Disabled by an administrator.", "05"))
    elif row.state == "maintenance":
        if aux == "administrative_request":
            lines.append(("Reason: Maintenance requested by an administrator.", "63"))
        elif aux == "restarting_too_quickly":
            lines.append(("Reason: Restarting too quickly.", "L5"))
        elif aux in ("fault_threshold_reached", "method_failed"):
            ws = rt.get("waitstatus")
            repeated = aux == "fault_threshold_reached"
            if ws is None:
                text = "Method failed repeatedly." if repeated else "Method failed."
                lines.append((f"Reason: {text}", "8Q"))
            else:
                if ws < 0:
                    try:
                        sname = signal.strsignal(-ws)
                    except ValueError:
                        sname = None
                    how = f"died on {sname} ({-ws})" if sname else f"died on signal {-ws}"
                elif ws == 96:
                    how = "exited with $SMF_EXIT_ERR_CONFIG"
                elif ws == 95:
                    how = "exited with $SMF_EXIT_ERR_FATAL"
                else:
                    how = f"exited with status {ws}"
                if repeated:
                    lines.append((f"Reason: Start method failed repeatedly, last {how}.", "KS"))
                else:
                    lines.append((f"Reason: Start method {how}.", "KS"))
        else:
            lines.append(("Reason: Restarter svc:/system/svc/restarter:default gave no explanation.", "9C"))
    elif row.state == "offline":
        if row.nstate == "online":
            lines.append(("Reason: Start method is running.", "C4"))
        else:
            for _n, grouping, _ro, dtype, entities in dependency_pgs(data, row.fmri):
                if grouping not in ("require_all", "require_any"):
                    continue
                for ent in entities:
                    if dtype == "path" or ent.startswith("file://"):
                        continue
                    insts = entity_instances(data, ent)
                    if not insts:
                        lines.append((f"Reason: Dependency {ent} is absent.", "E2"))
                    for i in insts:
                        if state_of(vol, i)[0] not in ("online", "degraded"):
                            lines.append((f"Reason: Service {i} {summary(vol, i)}", "GE"))
            if not lines:
                lines.append(("Reason: Unknown.", "AP"))
    elif row.state == "degraded":
        lines.append(("Reason: Degraded by an administrator.", "9P"))
    elif row.state == "uninitialized":
        lines.append((f"Reason: Restarter {repository.RESTARTER_FMRI} has not initialized service state.", "CD"))
    return lines


def explain(data, vol, rows, verbose):
    first = True
    for row in rows:
        if not first:
            print()
        first = False
        print(f"{row.fmri} ({row.desc if row.desc != '-' else '?'})")
        since = time.strftime("%a %b %d %H:%M:%S %Y", time.localtime(row.rt.get("stime") or 0))
        print(f" State: {row.state} since {since}")
        for text, code in reasons(data, vol, row):
            print(text)
            print(f"   See: {MSGBASE}{code}")
        print(f"   See: {repository.log_path(row.fmri)}")
        down = dependents_down(data, vol, row.fmri)
        running = row.state in ("online", "degraded")
        if not down:
            print("Impact: None." if running else "Impact: This service is not running.")
        elif len(down) == 1:
            print("Impact: 1 dependent service is not running" + (":" if verbose else ".  (Use -v for list.)"))
        else:
            print(
                f"Impact: {len(down)} dependent services are not running"
                + (":" if verbose else ".  (Use -v for list.)")
            )
        if verbose:
            for d in down:
                print(f"        {d}")


def needs_explaining(data, vol, fmri):
    state, nstate = state_of(vol, fmri)
    if not is_enabled(data, vol, fmri):
        return False
    return state in ("maintenance", "degraded") or (state == "offline" and nstate == "none")


def main(argv):
    try:
        opts, operands = getopt.getopt(argv, "aHpvxlLdDo:s:S:R:z:Z?")
    except getopt.GetoptError as exc:
        print(f"svcs: illegal option -- {exc.opt}", file=sys.stderr)
        print(USAGE, file=sys.stderr)
        return 2
    flags = {o for o, _ in opts}
    if "-?" in flags:
        print(USAGE, file=sys.stderr)
        return 0
    cols = ["state", "stime", "fmri"]
    sort = []
    for o, v in opts:
        if o == "-o":
            cols = [c.strip().lower() for c in v.split(",") if c.strip()]
        elif o in ("-s", "-S"):
            sort.append((v.lower(), o == "-S"))
    if "-v" in flags and not any(o == "-o" for o, _ in opts) and "-x" not in flags:
        cols = ["state", "nstate", "stime", "ctid", "fmri"]
    for c in cols + [s for s, _ in sort]:
        if c not in WIDTHS:
            print(f'svcs: Unrecognized column "{c}".', file=sys.stderr)
            return 2
    zones = [v for o, v in opts if o == "-z"]
    if "-Z" in flags or zones:
        return zones_listing(flags, zones, cols, sort, operands)
    if "zone" in cols + [s for s, _ in sort]:
        print('svcs: Unrecognized column "zone".', file=sys.stderr)
        return 2
    return listing(flags, cols, sort, operands)


def zones_listing(flags, zones, cols, sort, operands):
    """``svcs -Z`` / ``svcs -z <zone>``: plain listings of zones' instances, one process."""
    if not inzone.in_global_zone():
        print(f"svcs: svcs -{'Z' if '-Z' in flags else 'z'} may only be used from the global zone", file=sys.stderr)
        return 1
    if ("-Z" in flags and zones) or len(zones) > 1:
        print(USAGE, file=sys.stderr)
        return 2
    if flags & {"-x", "-l", "-L", "-d", "-D", "-p", "-v"}:
        print("svcs: with -z or -Z the test bed lists instances only (no -x, -l, -d, -D, -p, -v)", file=sys.stderr)
        return 2
    if zones:
        if not inzone.known(zones[0]):
            print(f"svcs: invalid zone '{zones[0]}'", file=sys.stderr)
            return 1
        targets = [(z, p) for z, p in inzone.running_zones() if z == zones[0]]
        if not targets:
            print(unbound(zones[0]), file=sys.stderr)
            return 1
    else:
        targets = inzone.running_zones()
    if "-Z" in flags and "-o" not in flags:
        cols = ["zone", *cols]
    inner = [c for c in cols if c != "zone"]
    keys = [s for s, _ in sort if s != "zone"] + ["state", "stime", "fmri"]
    rows, status = [], 0

    def rows_of():
        return _zone_rows(flags, inner, keys, operands)

    for (name, _pid), got in zip(targets, inzone.collect([pid for _name, pid in targets], rows_of), strict=True):
        if got is None:
            if zones:
                print(unbound(name), file=sys.stderr)
                return 1
            continue  # halted meanwhile: -Z goes on with the others
        for values, sortkeys in got["rows"]:
            rows.append((name, dict(zip(inner, values, strict=True)), dict(zip(keys, sortkeys, strict=True))))
        status = status or got["status"]
        for line in got["errors"] if zones else ():
            print(line, file=sys.stderr)
    default = ([("zone", False)] if "-Z" in flags else []) + [("state", False), ("stime", False)]
    order = (sort or default) + [("fmri", False)]
    for col, rev in reversed(order):
        rows.sort(key=lambda r, c=col: r[0] if c == "zone" else r[2][c], reverse=rev)
    if "-H" not in flags:
        print(format_row(cols, [HEADERS[c] for c in cols]))
    for name, values, _keys in rows:
        print(format_row(cols, [name if c == "zone" else values[c] for c in cols]))
    return status if zones else 0


def unbound(name):
    return f"svcs: Could not bind to repository server for zone {name}: repository server unavailable"


def _zone_rows(flags, cols, keys, operands):
    """Inside a zone: the rows ``listing`` would print, with their sort keys."""
    import contextlib
    import io

    data = repository.load()
    vol = volatile.load()
    errors = io.StringIO()
    status = 0
    with contextlib.redirect_stderr(errors):
        if operands:
            fmris, status = resolve("svcs", data, operands, multiple=True)
        else:
            fmris = [f for f, _s, _i in repository.instances(data)]
    rows = [Row(data, vol, f) for f in fmris]
    if not operands and "-a" not in flags:
        rows = [r for r in rows if r.state != "disabled" or r.nstate != "none" or r.enabled]
    return {
        "rows": [([r.col(c) for c in cols], [r.key(k) for k in keys]) for r in rows],
        "status": status,
        "errors": errors.getvalue().splitlines(),
    }


def listing(flags, cols, sort, operands):
    data = repository.load()
    vol = volatile.load()
    status = 0
    if operands:
        fmris, status = resolve("svcs", data, operands, multiple=True)
    else:
        fmris = [f for f, _s, _i in repository.instances(data)]
    rows = [Row(data, vol, f) for f in fmris]
    if "-x" in flags:
        if not operands:
            rows = [r for r in rows if needs_explaining(data, vol, r.fmri)]
        explain(data, vol, rows, "-v" in flags)
        return status
    if "-l" in flags or "-L" in flags:
        if not operands:
            print("svcs: -l requires at least one service operand.", file=sys.stderr)
            print(USAGE, file=sys.stderr)
            return 2
        for i, row in enumerate(rows):
            if i:
                print()
            if "-L" in flags:
                print(repository.log_path(row.fmri))
            else:
                long_listing(data, vol, row)
        return status
    if not operands and "-a" not in flags:
        rows = [r for r in rows if r.state != "disabled" or r.nstate != "none" or r.enabled]
    if not sort:
        sort = [("state", False), ("stime", False)]
    for col, rev in reversed(sort + [("fmri", False)]):
        rows.sort(key=lambda r, c=col: r.key(c), reverse=rev)
    if "-H" not in flags:
        print(format_row(cols, [HEADERS[c] for c in cols]))
    for row in rows:
        print(format_row(cols, [row.col(c) for c in cols]))
        if "-p" in flags:
            print_procs(row)
    return status
