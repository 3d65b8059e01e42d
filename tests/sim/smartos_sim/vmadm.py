"""Simulated ``vmadm``: data on stdout, every message on stderr.

Exit status 0 on success, 1 on an error, 2 on a usage error, as
smartos-live's ``src/vm/sbin/vmadm.js``.
"""

import json
import os
import re
import sys

from . import gz, imagesource, snapshot, vmobj, zone
from .common import ToolError

COMMANDS = ("create", "create-snapshot", "delete", "delete-snapshot", "get", "json", "info", "list", "lookup",
            "reboot", "rollback-snapshot", "start", "boot", "stop", "halt", "update", "validate", "help")  # fmt: skip
LIST_DEFAULT_FIELDS = "uuid,type,ram,state,alias"
TIMEOUT_BRANDS = ("bhyve", "kvm")  # and docker VMs, which the test bed does not have
# VM.js's validSnapshotName: ZFS's characters, at most MAX_SNAPNAME_LENGTH (64) of them.
SNAPNAME_RE = re.compile(r"[A-Za-z0-9_.:%-]{1,64}")
LIST_WIDTHS = {"uuid": 36, "type": 4, "ram": 7, "state": 16, "alias": 10, "brand": 14, "hostname": 16}

USAGE = """Usage: vmadm <command> [options]

create [-f <filename>]
create-snapshot <uuid> <snapname>
delete <uuid>
delete-snapshot <uuid> <snapname>
get <uuid>
info <uuid> [type,...]
list [-p] [-H] [-o field,...] [-s field,...] [field=value ...]
lookup [-j|-1] [-o field,...] [field=value ...]
reboot <uuid> [-F]
rollback-snapshot <uuid> <snapname>
start <uuid> [option=value ...]
stop <uuid> [-F] [-t timeout]
update <uuid> [-f <filename>]
 -or- update <uuid> property=value [property=value ...]
validate create [-f <filename>]
validate update <brand> [-f <filename>]"""


class Usage(ToolError):
    def __init__(self, message):
        super().__init__(f"{message}\n{USAGE}" if message else USAGE, 2)


def _is_uuid(text):
    return len(text) == 36 and text[8] == "-" and text[13] == "-" and text[18] == "-" and text[23] == "-"


def _take_uuid(command, args):
    if args and _is_uuid(args[0]):
        return args.pop(0)
    raise Usage(f"Invalid or missing UUID for {command}")


def _flags(args, known, with_value=()):
    """Split ``args`` into flags (``-x`` / ``-x value`` / ``--long``) and the rest."""
    flags, rest = {}, []
    while args:
        arg = args.pop(0)
        if arg in with_value:
            if not args:
                raise Usage(f"Option {arg} requires an argument")
            flags[arg] = args.pop(0)
        elif arg in known:
            flags[arg] = True
        elif (
            arg.startswith("-") and len(arg) > 2 and not arg.startswith("--") and all(f"-{c}" in known for c in arg[1:])
        ):
            for c in arg[1:]:
                flags[f"-{c}"] = True
        elif arg.startswith("-") and arg != "-":
            raise Usage(f'Invalid option: "{arg}"')
        else:
            rest.append(arg)
    return flags, rest


def _read_payload(filename, command):
    if filename and filename != "-":
        try:
            with open(filename, encoding="utf-8") as fh:
                text = fh.read()
        except OSError as exc:
            raise ToolError(f"{exc.strerror}: {filename}", 1) from None
    else:
        if sys.stdin.isatty():
            raise Usage(f"Will not {command} from stdin when stdin is a tty.")
        text = sys.stdin.read()
    try:
        return json.loads(text)
    except ValueError as exc:
        raise ToolError(f"Invalid JSON payload: {exc}", 1) from None


def _load(uuid):
    vm = gz.load_vm(uuid)
    if vm is None:
        raise gz.not_configured(uuid)
    return vm


def view(vm):
    """The VM object as vmadm prints it, with its live state."""
    out = dict(vm)
    pid = zone.init_pid(vm["uuid"])
    transition = vm.get("transition")
    if pid and transition == "stopping":  # a clean stop in progress
        out.update(state="stopping", zone_state="shutting_down", pid=pid, zoneid=pid % 1000 + 1)
        out["boot_timestamp"] = vm.get("boot_timestamp")
    elif pid:
        out.update(state="running", zone_state="running", pid=pid, zoneid=pid % 1000 + 1)
        out["boot_timestamp"] = vm.get("boot_timestamp")
    else:
        state = transition if transition in ("provisioning", "failed") else "stopped"
        out.update(state=state, zone_state="installed")
        out.pop("boot_timestamp", None)
    out.pop("transition", None)
    # Newest first, as vmload sorts them (ties keep ZFS's order: oldest first).
    out["snapshots"] = sorted(vm.get("snapshots", []), key=lambda s: s["created_at"], reverse=True)
    return out


def all_vms():
    return [view(v) for v in (gz.load_vm(u) for u in gz.vm_uuids()) if v]


def _lookup_value(vm, key):
    """Values of ``key`` (dotted, with ``*`` over lists) in ``vm``."""
    values = [vm]
    for part in key.split("."):
        nxt = []
        for value in values:
            if isinstance(value, list) and (part == "*" or part.isdigit()):
                nxt.extend(value if part == "*" else value[int(part) : int(part) + 1])
            elif isinstance(value, dict) and part in value:
                nxt.append(value[part])
        values = nxt
    return values


def _as_text(value):
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return ""
    if isinstance(value, (dict, list)):
        return json.dumps(value)
    return str(value)


def _matches(vm, filters):
    for key, want in filters:
        values = [_as_text(v) for v in _lookup_value(vm, key)]
        if want.startswith("~"):
            try:
                pattern = re.compile(want[1:])
            except re.error:
                raise ToolError(f'Invalid regular expression: "{want[1:]}"', 1) from None
            if not any(pattern.search(v) for v in values):
                return False
        elif want not in values:
            return False
    return True


def _filters(args):
    out = []
    for arg in args:
        if "=" not in arg:
            raise Usage(f"Bad arguments: unable to split {arg}")
        key, value = arg.split("=", 1)
        if not re.match(r"^[A-Za-z0-9_*.:-]+$", key):
            raise ToolError(f'Invalid lookup key: "{key}"', 1)
        out.append((key, value))
    return out


def _field(vm, name):
    if name == "ram":
        return vm.get("max_physical_memory")
    if name == "type":
        return vm.get("type", "OS")
    values = _lookup_value(vm, name)
    return values[0] if values else None


def _sort_key(vm, name):
    value = _field(vm, name)
    if name == "ram":
        return (value is None, value or 0)
    return (value is None, _as_text(value))


def do_list(args):
    flags, rest = _flags(args, ("-p", "-H"), ("-o", "-s"))
    fields = (flags.get("-o") or LIST_DEFAULT_FIELDS).split(",")
    sort = (flags.get("-s") or "ram,uuid").split(",")
    vms = [v for v in all_vms() if _matches(v, _filters(rest))]
    for key in reversed(sort):
        reverse = key.startswith("-")
        name = key.lstrip("+-")
        vms.sort(key=lambda v, n=name: _sort_key(v, n), reverse=reverse)
    rows = [[_as_text(_field(v, f)) if _field(v, f) is not None else "-" for f in fields] for v in vms]
    if "-p" in flags:
        for row in rows:
            print(":".join("" if c == "-" else c for c in row))
        return 0
    widths = [max([LIST_WIDTHS.get(f, len(f)), len(f)] + [len(r[i]) for r in rows]) for i, f in enumerate(fields)]
    if "-H" not in flags:
        print("  ".join(f.upper().ljust(w) for f, w in zip(fields, widths, strict=False)).rstrip())
    for row in rows:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=False)).rstrip())
    return 0


def do_lookup(args):
    flags, rest = _flags(args, ("-j", "-1", "--json", "--unique"), ("-o", "--output"))
    as_json = "-j" in flags or "--json" in flags
    unique = "-1" in flags or "--unique" in flags
    output = flags.get("-o") or flags.get("--output")
    if output and not as_json:
        raise ToolError("Cannot specify -o without -j", 1)
    vms = [v for v in all_vms() if _matches(v, _filters(rest))]
    if unique and len(vms) != 1:
        raise ToolError(f"Requested unique lookup but found {len(vms)} results.", 1)
    if as_json:
        if output:
            keys = output.split(",")
            vms = [{k: v[k] for k in keys if k in v} for v in vms]
        print(json.dumps(vms, indent=2))
    else:
        for vm in vms:
            print(vm["uuid"])
    return 0


def do_get(args):
    uuid = _take_uuid("get", args)
    print(json.dumps(view(_load(uuid)), indent=2, sort_keys=True))
    return 0


def do_info(args):
    uuid = _take_uuid("info", args)
    vm = _load(uuid)
    raise ToolError(f"Unable to get info for vm from VNC: {vm['brand']} VMs do not support info", 1)


def _nic_tags():
    return gz.server().get("nic_tags", ["admin", "external"])


def do_create(args):
    flags, rest = _flags(args, (), ("-f", "--file"))
    if rest:
        raise Usage("Too many arguments.")
    payload = _read_payload(flags.get("-f") or flags.get("--file"), "create")
    with gz.locked():
        vm = vmobj.validate_create(payload, _nic_tags())
        if gz.load_vm(vm["uuid"]) is not None:
            raise ToolError(f"VM with UUID {vm['uuid']} already exists", 1)
        vm["transition"] = "provisioning"
        gz.save_vm(vm)
        try:
            zone.install(vm)
            del vm["transition"]
            gz.save_vm(vm)
            if vm.get("autoboot", True):
                zone.boot(vm)
                vm["boot_timestamp"] = vmobj.now()
                gz.save_vm(vm)
        except ToolError as exc:
            vm["transition"] = "failed"
            gz.save_vm(vm)
            raise ToolError(f"Failed to create VM {vm['uuid']}: {exc.message}", 1) from None
    print(f"Successfully created VM {vm['uuid']}", file=sys.stderr)
    return 0


def do_update(args):
    flags, rest = _flags(args, (), ("-f", "--file"))
    uuid = _take_uuid("update", rest)
    if rest:
        payload = {}
        for arg in rest:
            if "=" not in arg:
                raise Usage(f"Bad arguments: unable to split {arg}")
            key, value = arg.split("=", 1)
            payload[key] = value
    else:
        payload = _read_payload(flags.get("-f") or flags.get("--file"), "update")
    with gz.locked():
        vm = _load(uuid)
        changed = vmobj.apply_update(vm, payload, _nic_tags())
        gz.save_vm(vm)
        pid = zone.init_pid(uuid)
        if pid and "nics" in changed:
            # Link protection is the global zone's: it follows at once.
            # Addresses inside the zone follow at the next boot, as on SmartOS.
            from . import lan

            for index, nic in enumerate(vm["nics"]):
                lan.protect(lan.port_name(uuid, index), nic)
    print(f"Successfully updated VM {uuid}", file=sys.stderr)
    return 0


def do_start(args, command="start"):
    uuid = _take_uuid(command, args)
    with gz.locked():
        vm = _load(uuid)
        if zone.init_pid(uuid):
            print(f"VM {uuid} is already 'running'", file=sys.stderr)
            return 0
        zone.boot(vm)
        vm["boot_timestamp"] = vmobj.now()
        vm["autoboot"] = True  # started on purpose: up again after a reboot of the host
        gz.save_vm(vm)
    print(f"Successfully started VM {uuid}", file=sys.stderr)
    return 0


def store(uuid, **changes):
    """Change stored properties of a VM under the lock (None removes one)."""
    with gz.locked():
        vm = _load(uuid)
        for key, value in changes.items():
            if value is None:
                vm.pop(key, None)
            else:
                vm[key] = value
        gz.save_vm(vm)
    return vm


def stop_zone(uuid, force):
    """Stop a running zone: halt it (``force``), or shut it down cleanly, as
    VM.js does: ``shutdown -y -g 0 -i 5`` in the zone, then a halt when it
    is not down after STOP_TIMEOUT. Other commands on this global zone are
    not held meanwhile (the stop takes the lock only to record state).
    Returns whether the zone went down by itself (False: halted)."""
    vm = store(uuid, transition="stopping")
    try:
        if force:
            zone.halt(vm)
            return False
        return zone.shutdown(vm)
    finally:
        store(uuid, transition=None)


def do_stop(args, command="stop"):
    flags, rest = _flags(args, ("-F", "--force"), ("-t", "--timeout"))
    uuid = _take_uuid(command, rest)
    force = "-F" in flags or "--force" in flags
    with gz.locked():
        vm = _load(uuid)
        if not zone.init_pid(uuid):
            print(f"VM {uuid} is already not 'running' (currently: {view(vm)['state']})", file=sys.stderr)
            return 0
    if not force and ("-t" in flags or "--timeout" in flags) and vm.get("brand") not in TIMEOUT_BRANDS:
        raise ToolError("Timeout option is only supported for bhyve, KVM and docker containers.", 1)
    stop_zone(uuid, force)
    store(uuid, autoboot=False)  # stopped on purpose: not booted with the host
    print(f"Successfully completed {command} for VM {uuid}", file=sys.stderr)
    return 0


def do_reboot(args):
    flags, rest = _flags(args, ("-F", "--force"))
    uuid = _take_uuid("reboot", rest)
    with gz.locked():
        vm = _load(uuid)
        if not zone.init_pid(uuid):
            raise ToolError(f"Cannot reboot vm, state is '{view(vm)['state']}', must be 'running'", 1)
    stop_zone(uuid, "-F" in flags or "--force" in flags)
    with gz.locked():
        vm = _load(uuid)
        zone.boot(vm)
        vm["boot_timestamp"] = vmobj.now()
        gz.save_vm(vm)
    print(f"Successfully completed reboot for VM {uuid}", file=sys.stderr)
    return 0


def do_delete(args):
    uuid = _take_uuid("delete", args)
    with gz.locked():
        vm = _load(uuid)
        zone.halt(vm)
        zone.remove(vm)
    print(f"Successfully deleted VM {uuid}", file=sys.stderr)
    return 0


def _snapshot_args(command, args):
    """``<uuid> <snapname>``, as vmadm.js takes them for the snapshot commands."""
    _, rest = _flags(args, ())  # no options: a word starting with '-' is a usage error
    uuid = _take_uuid(command, rest)
    if len(rest) != 1:
        raise Usage(f'Wrong number of parameters to "{command}"')
    snapname = rest[0]
    if not SNAPNAME_RE.fullmatch(snapname):  # checked first, before the VM
        raise ToolError("Invalid snapshot name", 1)
    return uuid, snapname


def _snapshot_index(vm, snapname):
    """Where ``snapname`` is in the VM's snapshots (oldest first), as VM.js
    looks for it in ``vmobj.snapshots``."""
    for index, snap in enumerate(vm.get("snapshots", [])):
        if snap["name"] == snapname:
            return index
    raise ToolError(f'No snapshot named "{snapname}" for {vm["uuid"]}', 1)


def _vminfod_vm(uuid):
    """The VM, as VM.js's create_snapshot and delete_snapshot get it from vminfod."""
    vm = gz.load_vm(uuid)
    if vm is None:
        raise ToolError(f"VM {uuid} not found", 1)
    return vm


def do_create_snapshot(args):
    """VM.js's create_snapshot: ``zfs snapshot zones/<uuid>@vmsnap-<name>``.
    (On SmartOS a running zone also gets it mounted read-only at
    /checkpoints/<name>; a zone of the bed shares the host's / (only /etc,
    /usr, /opt and /var are its own), so it gets no such mount.)"""
    uuid, snapname = _snapshot_args("create-snapshot", args)
    with gz.locked():
        vm = _vminfod_vm(uuid)
        if any(s["name"] == snapname for s in vm.get("snapshots", [])):
            raise ToolError(f'snapshot with name "{snapname}" already exists.', 1)
        used = snapshot.take(uuid, snapname)
        # size: vmload's, ZFS's ``written`` in MiB; here what the copy takes.
        snap = {"name": snapname, "size": used / 1024 / 1024, "created_at": snapshot.creation()}
        vm.setdefault("snapshots", []).append(snap)
        vm["last_modified"] = vmobj.now()  # VM.js touches the zone's XML
        gz.save_vm(vm)
    print(f"Created snapshot {snapname} for VM {uuid}", file=sys.stderr)
    return 0


def do_delete_snapshot(args):
    """VM.js's delete_snapshot: ``zfs destroy zones/<uuid>@vmsnap-<name>``."""
    uuid, snapname = _snapshot_args("delete-snapshot", args)
    with gz.locked():
        vm = _vminfod_vm(uuid)
        del vm["snapshots"][_snapshot_index(vm, snapname)]
        vm["last_modified"] = vmobj.now()
        gz.save_vm(vm)
        snapshot.destroy(uuid, snapname)
    print(f"Deleted snapshot {snapname} for VM {uuid}", file=sys.stderr)
    return 0


def _halt_unless_stopped(vm):
    """What rollback_snapshot does to a VM whose state is not 'stopped':
    ``VM.stop`` with ``force``, VM.js's halt (as ``vmadm stop -F``: no clean
    shutdown, no stop method), which unsets autoboot and ends a clean stop
    under way; it fails if the zone is not running."""
    state = view(vm)["state"]
    if state == "stopped":
        return
    if not zone.init_pid(vm["uuid"]):
        raise ToolError(f"VM {vm['uuid']} is already not 'running' (currently: {state})", 1)
    zone.halt(vm)
    vm["autoboot"] = False
    if vm.get("transition") == "stopping":
        del vm["transition"]
    gz.save_vm(vm)


def do_rollback_snapshot(args):
    """VM.js's rollback_snapshot: a VM that is not stopped is halted
    (``VM.stop`` with ``force``: no clean shutdown), ``zfs rollback -r``
    puts the snapshot back and destroys every newer one, then ``VM.start``
    boots the VM, whether or not it was running before (and sets autoboot,
    which the halt had unset)."""
    uuid, snapname = _snapshot_args("rollback-snapshot", args)
    with gz.locked():
        vm = gz.load_vm(uuid)
        if vm is None:  # VM.load's error from vminfod (vmadm rewrites it for get only)
            raise ToolError("bad statusCode: 404", 1)
        index = _snapshot_index(vm, snapname)
        _halt_unless_stopped(vm)
        snapshot.restore(uuid, snapname)
        newer = vm["snapshots"][index + 1 :]
        vm["snapshots"] = vm["snapshots"][: index + 1]
        gz.save_vm(vm)
        for snap in newer:
            snapshot.destroy(uuid, snap["name"])
        zone.boot(vm)
        # VM.start sets autoboot in the zone's configuration: last_modified too
        vm.update(boot_timestamp=vmobj.now(), autoboot=True, last_modified=vmobj.now())
        gz.save_vm(vm)
    print(f"Rolled back snapshot {snapname} for VM {uuid}", file=sys.stderr)
    return 0


def do_validate(args):
    flags, rest = _flags(args, (), ("-f", "--file"))
    if not rest or rest[0] not in ("create", "update"):
        raise Usage("Will not validate without a valid action.")
    if rest[0] == "update" and len(rest) != 2:
        raise Usage("Will not validate without a valid action and brand.")
    payload = _read_payload(flags.get("-f") or flags.get("--file"), "validate")
    action = rest[0]
    brand = rest[1] if action == "update" else (payload.get("brand") if isinstance(payload, dict) else None)
    problems = {"bad_values": [], "bad_properties": [], "missing_properties": []}
    try:
        if action == "create":
            vmobj.validate_create(payload, _nic_tags())
        else:
            probe = vmobj.build({"brand": brand or "joyent", "image_uuid": imagesource.STANDARD64["uuid"]}, [])
            vmobj.apply_update(probe, payload, _nic_tags())
    except ToolError as exc:
        text = exc.message
        if text.startswith("Invalid value(s) for: "):
            problems["bad_values"] = text.split(": ", 1)[1].split(",")
        elif text.startswith("Missing required properties: "):
            problems["missing_properties"] = text.split(": ", 1)[1].split(",")
        else:
            raise
        raise ToolError(json.dumps(problems, indent=2), 1) from None
    print(f"VALID '{action}' payload for {brand} brand VMs.", file=sys.stderr)
    return 0


def main(argv):
    args = list(argv)
    if not args:
        raise Usage(None)
    command = args.pop(0)
    if command in ("help", "-h", "--help"):
        print(USAGE)
        return 0
    if command not in COMMANDS:
        raise Usage(f'Invalid command: "{command}".')
    if os.geteuid() != 0:
        raise ToolError("FATAL: cannot run because: must be root in the global zone", 2)
    handlers = {
        "create": do_create,
        "create-snapshot": do_create_snapshot,
        "delete": do_delete,
        "delete-snapshot": do_delete_snapshot,
        "get": do_get,
        "json": do_get,
        "info": do_info,
        "list": do_list,
        "lookup": do_lookup,
        "reboot": do_reboot,
        "rollback-snapshot": do_rollback_snapshot,
        "start": do_start,
        "boot": lambda a: do_start(a, "boot"),
        "stop": do_stop,
        "halt": lambda a: do_stop(a, "stop"),
        "update": do_update,
        "validate": do_validate,
    }
    return handlers[command](args)
