"""
Manage SmartOS virtual machines with ``vmadm`` from the global zone.

Salt 3008 removed ``smartos_vmadm`` with every other SmartOS module; this
module takes its place for OS zones and does better where it was weak:

- every function that takes a VM accepts its UUID or its alias; an alias is
  resolved with one ``vmadm lookup -1`` and an unknown or ambiguous alias is a
  clear error;
- reads use JSON (``vmadm lookup -j``, ``vmadm get``), never the
  ``:``-separated ``vmadm list -p`` output that MAC addresses break;
- ``list`` and ``lookup`` cost one ``vmadm`` process however many VMs there
  are; the result is cached for the run in ``__context__`` and dropped by
  every write;
- a failure raises ``CommandExecutionError`` with vmadm's own message;
- commands run as argument lists, payloads go in as JSON on stdin.

:depends: the ``vmadm`` command
:platform: SmartOS global zone
"""

import json
import logging
import re

import salt.utils.path
from salt.exceptions import CommandExecutionError, SaltInvocationError

log = logging.getLogger(__name__)

__virtualname__ = "vmadm"
__func_alias__ = {"list_": "list"}

UUID_RE = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
ALIAS_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,255}$")
MAC_RE = re.compile(r"^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$")
CACHE = "vmadm.vms"
ALIASES = "vmadm.aliases"
LIST_FIELDS = "uuid,type,ram,state,alias"


def __virtual__():
    if salt.utils.path.which("vmadm"):
        return __virtualname__
    return (False, "vmadm: the vmadm command was not found (it exists in a SmartOS global zone)")


def _vmadm(*args, stdin=None):
    """Run vmadm; a non-zero exit raises CommandExecutionError with its message."""
    res = __salt__["cmd.run_all"](
        ["vmadm", *args],
        python_shell=False,
        stdin=stdin,
        ignore_retcode=True,
        output_loglevel="quiet",  # VM objects may carry secrets in their metadata
    )
    if res["retcode"] != 0:
        message = (res.get("stderr") or res.get("stdout") or "").strip()
        raise CommandExecutionError(
            f"vmadm {args[0]}: {message or 'failed with exit status ' + str(res['retcode'])}",
        )
    return res


def _forget():
    __context__.pop(CACHE, None)
    __context__.pop(ALIASES, None)


def _all():
    """Every VM of this global zone, whole, from one ``vmadm lookup -j``."""
    if CACHE not in __context__:
        __context__[CACHE] = json.loads(_vmadm("lookup", "-j")["stdout"] or "[]")
    return __context__[CACHE]


def _parse_search(search):
    """``search`` as a list of (key, value) pairs."""
    if search is None or search == "":
        return []
    if isinstance(search, dict):
        return [(str(k), v) for k, v in search.items()]
    items = search.split() if isinstance(search, str) else list(search)
    pairs = []
    for item in items:
        if not isinstance(item, str) or "=" not in item:
            raise SaltInvocationError(f"vmadm: search terms look like key=value, not {item!r}")
        key, value = item.split("=", 1)
        pairs.append((key, value))
    return pairs


def _filters(kwargs):
    """Search terms given as keyword arguments (Salt's own ``__pub_*`` aside)."""
    return [(k, v) for k, v in kwargs.items() if not k.startswith("__")]


def _values(vm, key):
    values = [vm]
    for part in key.split("."):
        found = []
        for value in values:
            if isinstance(value, list) and (part == "*" or part.isdigit()):
                found.extend(value if part == "*" else value[int(part) : int(part) + 1])
            elif isinstance(value, dict) and part in value:
                found.append(value[part])
        values = found
    return values


def _text(value):
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)


def _matches(vm, pairs):
    return all(_text(want) in [_text(v) for v in _values(vm, key)] for key, want in pairs)


def _field(vm, name):
    if name == "ram":
        return vm.get("max_physical_memory", vm.get("ram"))
    values = _values(vm, name)
    return values[0] if values else None


def uuid(vm):
    """
    Return the UUID of a VM given by UUID or alias.

    vm
        A VM's UUID, or its alias (letters, digits, ``.``, ``_`` and ``-``).
        An alias must name exactly one VM.

    CLI Example:

    .. code-block:: bash

        salt gz1 vmadm.uuid zoneA
    """
    if not isinstance(vm, str) or not vm:
        raise SaltInvocationError(f"vmadm: a VM UUID or alias is required, not {vm!r}")
    if UUID_RE.match(vm):
        return vm.lower()
    if not ALIAS_RE.match(vm):
        raise SaltInvocationError(
            f"vmadm: {vm!r} is neither a VM UUID nor an alias (letters, digits, '.', '_' and '-')"
        )
    aliases = __context__.setdefault(ALIASES, {})
    if vm not in aliases:
        try:
            aliases[vm] = _vmadm("lookup", "-1", f"alias={vm}")["stdout"].strip()
        except CommandExecutionError as exc:
            found = re.search(r"found (\d+) results", str(exc))
            if found and found.group(1) == "0":
                raise CommandExecutionError(f"vmadm: no VM has the alias '{vm}'") from None
            if found:
                raise CommandExecutionError(
                    f"vmadm: the alias '{vm}' names {found.group(1)} VMs; give the UUID instead"
                ) from None
            raise
    return aliases[vm]


def list_(search=None, fields=LIST_FIELDS, keyed=True, **filters):
    """
    List the VMs of this global zone, one ``vmadm`` process for all of them.

    search
        Only VMs matching every ``key=value`` term (a string of
        space-separated terms, a list of them, or a dict). Keys may be dotted
        and use ``*`` over lists, as vmadm's: ``nics.*.ip=192.0.2.11``.

    fields
        Comma-separated fields to return (default
        ``uuid,type,ram,state,alias``); any VM property, dotted.

    keyed
        Return a dict keyed by UUID (default) rather than a list.

    filters
        More ``key=value`` terms given as keyword arguments
        (``state=running``); dotted keys go in ``search``.

    CLI Example:

    .. code-block:: bash

        salt gz1 vmadm.list
        salt gz1 vmadm.list state=running
        salt gz1 vmadm.list search='brand=joyent state=running' fields=uuid,alias,nics.0.ip
        salt gz1 vmadm.list keyed=False
    """
    pairs = _parse_search(search) + _filters(filters)
    names = [f for f in (fields.split(",") if isinstance(fields, str) else list(fields)) if f]
    rows = {vm["uuid"]: {name: _field(vm, name) for name in names} for vm in _all_matching(pairs)}
    return rows if keyed else list(rows.values())


def _all_matching(pairs):
    return [vm for vm in _all() if _matches(vm, pairs)]


def lookup(search=None, one=False, **filters):
    """
    Return whole VM objects matching a search, as ``vmadm lookup -j`` does.

    search
        ``key=value`` terms, as for ``vmadm.list``.

    one
        Require exactly one match and return it alone (an error otherwise,
        as ``vmadm lookup -1``).

    filters
        More ``key=value`` terms given as keyword arguments (``alias=zoneA``).

    CLI Example:

    .. code-block:: bash

        salt gz1 vmadm.lookup alias=zoneA
        salt gz1 vmadm.lookup 'nics.*.nic_tag=admin' one=True
    """
    found = _all_matching(_parse_search(search) + _filters(filters))
    if one:
        if len(found) != 1:
            raise CommandExecutionError(f"vmadm lookup: Requested unique lookup but found {len(found)} results.")
        return found[0]
    return found


def exists(vm):
    """
    Tell whether a VM (UUID or alias) exists on this global zone.

    CLI Example:

    .. code-block:: bash

        salt gz1 vmadm.exists zoneA
    """
    if isinstance(vm, str) and UUID_RE.match(vm):
        return any(v["uuid"] == vm.lower() for v in _all())
    try:
        uuid(vm)
    except CommandExecutionError:
        return False
    return True


def get(vm):
    """
    Return a VM's whole configuration and state (``vmadm get``).

    vm
        UUID or alias.

    CLI Example:

    .. code-block:: bash

        salt gz1 vmadm.get zoneA
        salt gz1 vmadm.get 5c1b5a8e-0c55-4b2c-8b3a-2d7d0e6d0f7e
    """
    return json.loads(_vmadm("get", uuid(vm))["stdout"])


def state(vm):
    """
    Return a VM's state: ``running``, ``stopped``, ``provisioning``, ...

    CLI Example:

    .. code-block:: bash

        salt gz1 vmadm.state zoneA
    """
    return get(vm)["state"]


def info(vm, types=None):
    """
    Return ``vmadm info`` for a VM (KVM and bhyve only; OS zones refuse).

    types
        Comma-separated info types (``all`` by default).

    CLI Example:

    .. code-block:: bash

        salt gz1 vmadm.info kvm01 types=vnc
    """
    args = ["info", uuid(vm)]
    if types:
        args.append(types)
    return json.loads(_vmadm(*args)["stdout"])


def _payload(config, what):
    if isinstance(config, str):
        try:
            config = json.loads(config)
        except ValueError as exc:
            raise SaltInvocationError(f"vmadm: {what} is not valid JSON: {exc}") from None
    if not isinstance(config, dict) or not config:
        raise SaltInvocationError(f"vmadm: {what} must be a non-empty dict of VM properties")
    return config


def create(config):
    """
    Create a VM from a dict of properties (as pillar gives it); return its UUID.

    config
        The VM's properties, as vmadm's create payload: ``brand``,
        ``image_uuid``, ``alias``, ``max_physical_memory``, ``nics``, ...
        vmadm validates it and reports every bad value at once.

    CLI Example:

    .. code-block:: bash

        salt gz1 vmadm.create '{"brand": "joyent", "image_uuid": "d34c301e-10c3-11e4-9b79-5f67ca448df0",
            "alias": "zoneA", "nics": [{"nic_tag": "admin", "ip": "192.0.2.11", "netmask": "255.255.255.0"}]}'
    """
    payload = _payload(config, "config")
    try:
        res = _vmadm("create", stdin=json.dumps(payload))
    finally:
        _forget()
    found = re.search(r"Successfully created VM ([0-9a-fA-F-]{36})", res["stderr"])
    if not found:
        raise CommandExecutionError(f"vmadm create: unexpected reply: {res['stderr'].strip()}")
    log.info("vmadm: created VM %s (%s)", found.group(1), payload.get("alias", "no alias"))
    return found.group(1)


def update(vm, properties=None, **kwargs):
    """
    Update a VM's properties (``vmadm update``); most apply to a running VM.

    vm
        UUID or alias.

    properties
        A dict of properties, including vmadm's update actions:
        ``update_nics`` (list of NIC changes keyed by ``mac``), ``add_nics``,
        ``remove_nics`` (list of MACs), ``set_customer_metadata``, ...

    kwargs
        Plain properties given on the command line (``max_physical_memory=1024``);
        merged over ``properties``.

    CLI Example:

    .. code-block:: bash

        salt gz1 vmadm.update zoneA max_physical_memory=1024
        salt gz1 vmadm.update zoneA properties='{"update_nics": [{"mac": "90:b8:d0:12:34:56",
            "allowed_ips": ["192.0.2.100"]}]}'
    """
    payload = dict(_payload(properties, "properties") if properties else {})
    payload.update({k: v for k, v in kwargs.items() if not k.startswith("__")})
    if not payload:
        raise SaltInvocationError("vmadm: update needs at least one property")
    target = uuid(vm)
    try:
        _vmadm("update", target, stdin=json.dumps(payload))
    finally:
        _forget()
    return True


def update_nic(vm, interface="net0", **properties):
    """
    Update one NIC of a VM, found by interface name (or MAC), in place.

    vm
        UUID or alias.

    interface
        ``net0`` (default), ``net1``, ... or the NIC's MAC address.

    properties
        NIC properties to set: ``allowed_ips``, ``allow_ip_spoofing``,
        ``allow_mac_spoofing``, ``ips``, ``gateways``, ``primary``, ...

    CLI Example:

    .. code-block:: bash

        salt gz1 vmadm.update_nic zoneA allowed_ips='["192.0.2.100"]' allow_mac_spoofing=True
    """
    changes = {k: v for k, v in properties.items() if not k.startswith("__")}
    if not changes:
        raise SaltInvocationError("vmadm: update_nic needs at least one NIC property")
    nic = _nic(get(vm), interface)
    return update(vm, {"update_nics": [dict(changes, mac=nic["mac"])]})


def _nic(vmobj, interface):
    for nic in vmobj.get("nics", []):
        if interface in (nic.get("interface"), nic.get("mac")):
            return nic
    if not (isinstance(interface, str) and (interface.startswith("net") or MAC_RE.match(interface))):
        raise SaltInvocationError(f"vmadm: {interface!r} is neither a NIC interface name (net0) nor a MAC address")
    raise CommandExecutionError(f"vmadm: VM {vmobj['uuid']} has no NIC {interface}")


def _act(command, vm, *flags):
    target = uuid(vm)
    try:
        res = _vmadm(command, target, *flags)
    finally:
        _forget()
    log.info("vmadm %s %s: %s", command, target, res["stderr"].strip())
    return True


def start(vm):
    """
    Boot a VM; a running VM is left as it is (not an error).

    CLI Example:

    .. code-block:: bash

        salt gz1 vmadm.start zoneA
    """
    return _act("start", vm)


def stop(vm, force=False):
    """
    Stop a VM; a stopped VM is left as it is (not an error).

    force
        Halt at once (``vmadm stop -F``) instead of a clean shutdown.

    CLI Example:

    .. code-block:: bash

        salt gz1 vmadm.stop zoneA
        salt gz1 vmadm.stop zoneA force=True
    """
    return _act("stop", vm, *(["-F"] if force else []))


def reboot(vm, force=False):
    """
    Reboot a running VM.

    force
        Halt and boot (``vmadm reboot -F``) instead of a clean reboot.

    CLI Example:

    .. code-block:: bash

        salt gz1 vmadm.reboot zoneA
    """
    return _act("reboot", vm, *(["-F"] if force else []))


def delete(vm):
    """
    Delete a VM and everything in it (it is stopped first).

    CLI Example:

    .. code-block:: bash

        salt gz1 vmadm.delete zoneA
    """
    return _act("delete", vm)


def validate(config, action="create", brand=None):
    """
    Check a create or update payload with ``vmadm validate``; change nothing.

    Returns ``{"valid": True}``, or ``{"valid": False}`` with vmadm's lists:
    ``bad_values``, ``bad_properties``, ``missing_properties``.

    config
        The payload, as for ``vmadm.create`` / ``vmadm.update``.

    action
        ``create`` (default) or ``update``.

    brand
        The brand an update payload is for (``joyent`` by default).

    CLI Example:

    .. code-block:: bash

        salt gz1 vmadm.validate '{"brand": "joyent", "max_physical_memory": "lots"}'
    """
    if action not in ("create", "update"):
        raise SaltInvocationError(f"vmadm: validate action is 'create' or 'update', not {action!r}")
    args = ["validate", action]
    if action == "update":
        args.append(brand or "joyent")
    try:
        _vmadm(*args, stdin=json.dumps(_payload(config, "config")))
    except CommandExecutionError as exc:
        text = str(exc).split(": ", 1)[-1]
        try:
            problems = json.loads(text)
        except ValueError:
            raise exc from None
        return dict(problems, valid=False)
    return {"valid": True}
