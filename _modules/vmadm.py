"""
Manage SmartOS virtual machines with ``vmadm`` from the global zone.

Salt 3008 removed ``smartos_vmadm`` with every other SmartOS module; this
module takes its place for OS zones and does better where it was weak:

- every function that takes a VM accepts its UUID or its alias; an alias is
  resolved with one ``vmadm lookup`` and an unknown or ambiguous alias is a
  clear error;
- reads use JSON (``vmadm lookup -j``, ``vmadm get``), never the
  ``:``-separated ``vmadm list -p`` output that MAC addresses break;
- ``list`` and ``lookup`` cost one ``vmadm`` process however many VMs there
  are; in a state run (or a call that opens a run's store, see the
  ``run_cache`` util) the result is kept for the run and dropped by every
  write; an ad hoc call always asks ``vmadm`` again;
- a failure raises ``CommandExecutionError`` with vmadm's own message;
- commands run as argument lists, payloads go in as JSON on stdin.

On Salt 3006 and 3007, where Salt's own ``smartos_vmadm`` also loads as
``vmadm`` in a real global zone, this module is searched first. It takes
the call shapes of that module (``key=uuid|alias|hostname``, ``order=``,
``sort=``, properties as keyword arguments, ``from_file=``...) and gives
the same results, so Salt's ``smartos`` states keep working; the functions
it does not define (``sysrq``, ``send``, ``receive``, ``reprovision``, the
snapshots) still come from Salt's module.

:depends: the ``vmadm`` command
:platform: SmartOS global zone
"""

import json
import logging
import re

import salt.utils.path
import salt.version
from salt.exceptions import CommandExecutionError, SaltInvocationError

try:  # pip-installed as a Salt extension, whose utils Salt's loader does not read
    from saltext.ucarp.utils import run_cache as _packaged_run_cache
except ImportError:  # a formula: the util is synced and comes through __utils__
    _packaged_run_cache = None

log = logging.getLogger(__name__)

__virtualname__ = "vmadm"
__func_alias__ = {"list_": "list"}

UUID_RE = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
ALIAS_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,255}$")
MAC_RE = re.compile(r"^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$")
OPTION_RE = re.compile(r"^[A-Za-z0-9_]+=[^\s;&|`$<>]*$")
CACHE = "vmadm.vms"
RESOLVED = "vmadm.resolved"
LIST_FIELDS = "uuid,type,ram,state,alias"
LIST_SORT = "ram,uuid"  # vmadm list's own default
KEYS = ("uuid", "alias", "hostname")


class LookupCountError(CommandExecutionError):
    """What should name one VM names ``count`` of them (0, or more than 1)."""

    def __init__(self, message, count):
        super().__init__(message)
        self.count = count


def __virtual__():
    if salt.version.__version_info__ < (3006,):
        return (False, f"vmadm: needs Salt 3006 or newer, this is {salt.version.__version__}")
    if salt.utils.path.which("vmadm"):
        return __virtualname__
    return (False, "vmadm: the vmadm command was not found (it exists in a SmartOS global zone)")


def _vmadm(*args, stdin=None, check=True):
    """Run vmadm; a non-zero exit raises CommandExecutionError with its message
    (unless ``check`` is false: then the caller reads ``retcode``)."""
    res = __salt__["cmd.run_all"](
        ["vmadm", *args],
        python_shell=False,
        stdin=stdin,
        ignore_retcode=True,
        output_loglevel="quiet",  # VM objects may carry secrets in their metadata
    )
    if check and res["retcode"] != 0:
        message = (res.get("stderr") or res.get("stdout") or "").strip()
        raise CommandExecutionError(
            f"vmadm {args[0]}: {message or 'failed with exit status ' + str(res['retcode'])}",
        )
    return res


def _run(name):
    """A function of the formula's per-run cache (``_utils/run_cache.py``)."""
    return getattr(_packaged_run_cache, name) if _packaged_run_cache else __utils__[f"run_cache.{name}"]


def _remember(name, compute):
    """``compute()`` once per run's store under ``name`` (every time outside one)."""
    store = _run("current")(__context__)
    if store is None:
        return compute()
    if name not in store:
        store[name] = compute()
    return store[name]


def _forget():
    _run("drop")(__context__, CACHE, RESOLVED)


def _all():
    """Every VM of this global zone, whole, from one ``vmadm lookup -j`` (once per run)."""
    return _remember(CACHE, lambda: json.loads(_vmadm("lookup", "-j")["stdout"] or "[]"))


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


def _filters(kwargs, function):
    """Search terms given as keyword arguments (Salt's own ``__pub_*`` aside).

    A keyword that is a property of no VM here is a mistyped argument far
    more often than a search (``serach=...``): an error naming it, not an
    empty answer."""
    pairs = [(k, v) for k, v in kwargs.items() if not k.startswith("__")]
    vms = _all() if pairs else []
    for key, _value in pairs:
        if vms and not any(key in vm for vm in vms):
            raise SaltInvocationError(
                f"vmadm: {function} got {key}=..., which is neither one of its arguments nor a property of any VM "
                "here (dotted or unusual terms go in search=)"
            )
    return pairs


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
    """A value as ``vmadm list -p`` prints it."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        return json.dumps(value)
    return "" if value is None else str(value)


def _matches(vm, pairs):
    """Whether ``vm`` matches every term; ``~regex`` values match as vmadm's do."""
    for key, value in pairs:
        have = [_text(v) for v in _values(vm, key)]
        want = _text(value)
        if want.startswith("~"):
            try:
                pattern = re.compile(want[1:])
            except re.error as exc:
                raise SaltInvocationError(f"vmadm: {key}={want}: not a regular expression: {exc}") from None
            if not any(pattern.search(v) for v in have):
                return False
        elif want not in have:
            return False
    return True


def _field(vm, name):
    if name == "ram":
        return vm.get("max_physical_memory", vm.get("ram"))
    values = _values(vm, name)
    return values[0] if values else None


def _fields(text, what):
    names = [f.strip() for f in (text.split(",") if isinstance(text, str) else list(text)) if str(f).strip()]
    if not names:
        raise SaltInvocationError(f"vmadm: {what} names no field")
    return names


def _sorted(vms, sort):
    """``vms`` in the order of ``sort`` (``ram,-uuid``: as ``vmadm list -s``)."""
    ordered = list(vms)
    for name in reversed(_fields(sort, "sort")):
        field = name.lstrip("+-")

        def key(vm, field=field):
            value = _field(vm, field)
            number = isinstance(value, (int, float)) and not isinstance(value, bool)
            return (value is None, value if number else 0, "" if number else _text(value))

        ordered.sort(key=key, reverse=name.startswith("-"))
    return ordered


def _key(key):
    if key is None or key in KEYS:
        return key
    raise SaltInvocationError(f"vmadm: key must be one of {', '.join(KEYS)}, not {key!r}")


def uuid(vm, key=None):
    """
    Return the UUID of a VM given by UUID, alias or hostname.

    vm
        A VM's UUID, or its alias (letters, digits, ``.``, ``_`` and ``-``).
        An alias must name exactly one VM.

    key
        What ``vm`` is: ``uuid``, ``alias`` or ``hostname``, as in Salt's
        own ``smartos_vmadm``. By default a UUID is taken as one and
        anything else as an alias.

    CLI Example:

    .. code-block:: bash

        salt gz1 vmadm.uuid zoneA
        salt gz1 vmadm.uuid zonea-host key=hostname
    """
    key = _key(key)
    if not isinstance(vm, str) or not vm:
        raise SaltInvocationError(f"vmadm: a VM UUID or alias is required, not {vm!r}")
    if key in (None, "uuid") and UUID_RE.match(vm):
        return vm.lower()
    if key == "uuid":
        raise SaltInvocationError(f"vmadm: key=uuid, but {vm!r} is not a VM UUID")
    if not ALIAS_RE.match(vm):
        what = "a hostname" if key == "hostname" else "an alias"
        raise SaltInvocationError(f"vmadm: {vm!r} is neither a VM UUID nor {what} (letters, digits, '.', '_' and '-')")
    key = key or "alias"
    resolved = _remember(RESOLVED, dict)
    if (key, vm) not in resolved:
        if _run("current")(__context__) is not None:  # in a run: from the run's one lookup
            found = [{"uuid": v["uuid"]} for v in _all() if v.get(key) == vm]
        else:
            found = json.loads(_vmadm("lookup", "-j", "-o", "uuid", f"{key}={vm}")["stdout"] or "[]")
        if not found:
            raise LookupCountError(f"vmadm: no VM has the {key} '{vm}'", 0)
        if len(found) > 1:
            raise LookupCountError(f"vmadm: the {key} '{vm}' names {len(found)} VMs; give the UUID instead", len(found))
        resolved[(key, vm)] = found[0]["uuid"]
    return resolved[(key, vm)]


def list_(search=None, sort=None, order=None, keyed=True, fields=None, **filters):
    """
    List the VMs of this global zone, one ``vmadm`` process for all of them.

    The result is what ``vmadm list -p -o <order>`` prints, as Salt's own
    ``smartos_vmadm`` returned it, but read from JSON (MAC addresses and
    IPv6 do not break it): every value as text (``"512"``, ``"true"``, ``""``
    when unset).

    search
        Only VMs matching every ``key=value`` term (a string of
        space-separated terms, a list of them, or a dict). Keys may be dotted
        and use ``*`` over lists, as vmadm's: ``nics.*.ip=192.0.2.11``; a
        value ``~regex`` matches by regular expression.

    sort
        Comma-separated fields to sort by, ``-`` in front for descending
        (vmadm's ``-s``; default ``ram,uuid``).

    order
        Comma-separated fields to return (vmadm's ``-o``; default
        ``uuid,type,ram,state,alias``); any VM property, dotted.

    keyed
        Return a dict keyed by the first field (default), each value a dict
        of the other fields; or, with ``False``, a list of dicts (of values,
        when there is one field).

    fields
        Another name for ``order``.

    filters
        More ``key=value`` terms given as keyword arguments
        (``state=running``); dotted keys go in ``search``.

    CLI Example:

    .. code-block:: bash

        salt gz1 vmadm.list
        salt gz1 vmadm.list state=running
        salt gz1 vmadm.list search='brand=joyent state=running' order=uuid,alias,nics.0.ip
        salt gz1 vmadm.list order=alias,ram sort=-ram keyed=False
    """
    if order is not None and fields is not None and order != fields:
        raise SaltInvocationError("vmadm: give order or fields (the same thing), not both")
    names = _fields(order or fields or LIST_FIELDS, "order")
    vms = _sorted(_all_matching(_parse_search(search) + _filters(filters, "list")), sort or LIST_SORT)
    rows = [[_text(_field(vm, name)) for name in names] for vm in vms]
    if keyed:
        return {row[0]: dict(zip(names[1:], row[1:], strict=True)) for row in rows}
    if len(names) == 1:
        return [row[0] for row in rows]
    return [dict(zip(names, row, strict=True)) for row in rows]


def _all_matching(pairs):
    return [vm for vm in _all() if _matches(vm, pairs)]


def lookup(search=None, order=None, one=False, **filters):
    """
    Return whole VM objects matching a search, as ``vmadm lookup -j`` does.

    search
        ``key=value`` terms, as for ``vmadm.list``.

    order
        Comma-separated properties to keep of each object (vmadm's ``-o``).

    one
        Require exactly one match and return its UUID, as ``vmadm lookup -1``
        (an error naming the count otherwise).

    filters
        More ``key=value`` terms given as keyword arguments (``alias=zoneA``).

    CLI Example:

    .. code-block:: bash

        salt gz1 vmadm.lookup alias=zoneA
        salt gz1 vmadm.lookup search='state=running' order=uuid,alias
        salt gz1 vmadm.lookup 'nics.*.nic_tag=admin' one=True
    """
    pairs = _parse_search(search) + _filters(filters, "lookup")
    found = _all_matching(pairs)
    if one:
        if len(found) != 1:
            raise LookupCountError(f"vmadm lookup: Requested unique lookup but found {len(found)} results.", len(found))
        return found[0]["uuid"]
    if order:
        names = _fields(order, "order")
        return [{name: vm[name] for name in names if name in vm} for vm in found]
    return found


def exists(vm, key=None):
    """
    Tell whether a VM (UUID, alias or hostname) exists on this global zone.

    CLI Example:

    .. code-block:: bash

        salt gz1 vmadm.exists zoneA
    """
    if key in (None, "uuid") and isinstance(vm, str) and UUID_RE.match(vm):
        return any(v["uuid"] == vm.lower() for v in _all())
    try:
        uuid(vm, key)
    except LookupCountError as exc:
        return exc.count > 1
    return True


def get(vm, key=None):
    """
    Return a VM's whole configuration and state (``vmadm get``).

    vm
        UUID or alias.

    key
        ``uuid``, ``alias`` or ``hostname``: what ``vm`` is (see
        ``vmadm.uuid``).

    CLI Example:

    .. code-block:: bash

        salt gz1 vmadm.get zoneA
        salt gz1 vmadm.get 5c1b5a8e-0c55-4b2c-8b3a-2d7d0e6d0f7e
        salt gz1 vmadm.get zonea-host key=hostname
    """
    wanted = uuid(vm, key)
    if _run("current")(__context__) is not None:  # in a run: the run's one lookup has every VM whole
        for found in _all():
            if found.get("uuid") == wanted:
                return found
        raise LookupCountError(f"vmadm: no VM has the UUID {wanted}", 0)
    return json.loads(_vmadm("get", wanted)["stdout"])


def state(vm, key=None):
    """
    Return a VM's state: ``running``, ``stopped``, ``provisioning``, ...

    CLI Example:

    .. code-block:: bash

        salt gz1 vmadm.state zoneA
    """
    return get(vm, key)["state"]


def info(vm, info_type="all", key=None):
    """
    Return ``vmadm info`` for a VM (KVM and bhyve only; OS zones refuse).

    info_type
        Comma-separated info types: ``all`` (default), ``vnc``, ``block``...

    CLI Example:

    .. code-block:: bash

        salt gz1 vmadm.info kvm01 vnc
    """
    return json.loads(_vmadm("info", uuid(vm, key), info_type or "all")["stdout"])


def _payload(config, what):
    if isinstance(config, str):
        try:
            config = json.loads(config)
        except ValueError as exc:
            raise SaltInvocationError(
                f"vmadm: {what} is not valid JSON ({exc}); a payload in a file goes in from_file="
            ) from None
    if not isinstance(config, dict) or not config:
        raise SaltInvocationError(f"vmadm: {what} must be a non-empty dict of VM properties")
    return config


def _properties(kwargs):
    """Properties given as keyword arguments (Salt's own ``__pub_*`` aside)."""
    return {k: v for k, v in kwargs.items() if not k.startswith("__")}


def _source(payload, from_file, what):
    """The vmadm arguments and stdin for a payload given either way, not both."""
    if from_file is None:
        return [], json.dumps(payload)
    if payload:
        raise SaltInvocationError(f"vmadm: give the {what} in from_file or as properties, not both")
    if not isinstance(from_file, str) or not from_file.startswith("/") or "\0" in from_file:
        raise SaltInvocationError(f"vmadm: from_file must be an absolute path, not {from_file!r}")
    return ["-f", from_file], None


def create(config=None, from_file=None, **properties):
    """
    Create a VM from a dict of properties (as pillar gives it); return its UUID.

    config
        The VM's properties, as vmadm's create payload: ``brand``,
        ``image_uuid``, ``alias``, ``max_physical_memory``, ``nics``, ...
        vmadm validates it and reports every bad value at once.

    from_file
        A JSON payload in a file of the global zone (``vmadm create -f``),
        instead of ``config``.

    properties
        Properties as keyword arguments, as Salt's own ``smartos_vmadm``
        takes them (``vmadm.create(**vmconfig)``); merged over ``config``.

    CLI Example:

    .. code-block:: bash

        salt gz1 vmadm.create '{"brand": "joyent", "image_uuid": "d34c301e-10c3-11e4-9b79-5f67ca448df0",
            "alias": "zoneA", "nics": [{"nic_tag": "admin", "ip": "192.0.2.11", "netmask": "255.255.255.0"}]}'
        salt gz1 vmadm.create from_file=/opt/vm/zoneA.json
        salt gz1 vmadm.create brand=joyent image_uuid=d34c301e-10c3-11e4-9b79-5f67ca448df0 alias=zoneB
    """
    payload = dict(_payload(config, "config") if config is not None else {})
    payload.update(_properties(properties))
    if not payload and from_file is None:
        raise SaltInvocationError("vmadm: create needs a config, properties or from_file")
    args, stdin = _source(payload, from_file, "payload")
    try:
        res = _vmadm("create", *args, stdin=stdin)
    finally:
        _forget()
    found = re.search(r"Successfully created VM ([0-9a-fA-F-]{36})", res["stderr"])
    if not found:
        raise CommandExecutionError(f"vmadm create: unexpected reply: {res['stderr'].strip()}")
    log.info("vmadm: created VM %s (%s)", found.group(1), payload.get("alias", "no alias"))
    return found.group(1)


def update(vm, properties=None, from_file=None, key=None, **kwargs):
    """
    Update a VM's properties (``vmadm update``); most apply to a running VM.

    vm
        UUID or alias.

    properties
        A dict of properties, including vmadm's update actions:
        ``update_nics`` (list of NIC changes keyed by ``mac``), ``add_nics``,
        ``remove_nics`` (list of MACs), ``set_customer_metadata``, ...

    from_file
        A JSON payload in a file of the global zone (``vmadm update -f``),
        instead of properties.

    key
        ``uuid``, ``alias`` or ``hostname``: what ``vm`` is.

    kwargs
        Properties as keyword arguments (``max_physical_memory=1024``, or
        ``**changes`` as Salt's ``smartos`` state passes them); merged over
        ``properties``.

    CLI Example:

    .. code-block:: bash

        salt gz1 vmadm.update zoneA max_physical_memory=1024
        salt gz1 vmadm.update zoneA properties='{"update_nics": [{"mac": "90:b8:d0:12:34:56",
            "allowed_ips": ["192.0.2.100"]}]}'
        salt gz1 vmadm.update zoneA from_file=/opt/vm/zoneA-update.json
    """
    payload = dict(_payload(properties, "properties") if properties is not None else {})
    payload.update(_properties(kwargs))
    if not payload and from_file is None:
        raise SaltInvocationError("vmadm: update needs at least one property")
    args, stdin = _source(payload, from_file, "changes")
    target = uuid(vm, key)
    try:
        _vmadm("update", target, *args, stdin=stdin)
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
    changes = _properties(properties)
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


def _act(command, vm, key, *flags):
    target = uuid(vm, key)
    try:
        res = _vmadm(command, target, *flags)
    finally:
        _forget()
    log.info("vmadm %s %s: %s", command, target, res["stderr"].strip())
    return True


def start(vm, options=None, key=None):
    """
    Boot a VM; a running VM is left as it is (not an error).

    options
        Boot options of KVM and bhyve VMs, space-separated ``key=value``
        words (``order=c,once=d cdrom=/path/to/image.iso,ide``).

    key
        ``uuid``, ``alias`` or ``hostname``: what ``vm`` is.

    CLI Example:

    .. code-block:: bash

        salt gz1 vmadm.start zoneA
        salt gz1 vmadm.start kvm01 'order=c,once=d'
    """
    words = options.split() if isinstance(options, str) else list(options or [])
    for word in words:
        if not isinstance(word, str) or not OPTION_RE.match(word):
            raise SaltInvocationError(f"vmadm: start options are key=value words, not {word!r}")
    return _act("start", vm, key, *words)


def stop(vm, force=False, key=None, timeout=None):
    """
    Stop a VM; a stopped VM is left as it is (not an error).

    By default a clean shutdown: vmadm runs ``shutdown -y -g 0 -i 5`` in an
    OS zone, so SMF stops its services and runs their stop methods, and
    halts a zone still up after 60 s. Either way vmadm sets ``autoboot``
    to false: a stopped VM stays stopped when the hypervisor reboots.

    force
        Halt at once (``vmadm stop -F``), as a crash would: no stop method runs.

    key
        ``uuid``, ``alias`` or ``hostname``: what ``vm`` is.

    timeout
        Seconds to wait for a clean stop before forcing it (``-t``): bhyve,
        KVM and docker VMs only; vmadm refuses it for OS zones.

    CLI Example:

    .. code-block:: bash

        salt gz1 vmadm.stop zoneA
        salt gz1 vmadm.stop zoneA force=True
    """
    flags = ["-F"] if force else []
    if timeout is not None:
        if isinstance(timeout, bool) or not str(timeout).isdigit() or int(timeout) < 1:
            raise SaltInvocationError(f"vmadm: stop timeout is a whole number of seconds, not {timeout!r}")
        flags += ["-t", str(int(timeout))]
    return _act("stop", vm, key, *flags)


def reboot(vm, force=False, key=None):
    """
    Reboot a running VM (a clean shutdown, then boot).

    force
        Halt and boot (``vmadm reboot -F``) instead of a clean reboot.

    key
        ``uuid``, ``alias`` or ``hostname``: what ``vm`` is.

    CLI Example:

    .. code-block:: bash

        salt gz1 vmadm.reboot zoneA
    """
    return _act("reboot", vm, key, *(["-F"] if force else []))


def delete(vm, key=None):
    """
    Delete a VM and everything in it (it is stopped first).

    key
        ``uuid``, ``alias`` or ``hostname``: what ``vm`` is.

    CLI Example:

    .. code-block:: bash

        salt gz1 vmadm.delete zoneA
    """
    return _act("delete", vm, key)


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
    res = _vmadm(*args, stdin=json.dumps(_payload(config, "config")), check=False)
    if res["retcode"] == 0:
        return {"valid": True}
    try:
        problems = json.loads(res.get("stderr") or "")
    except ValueError:
        problems = None
    if not isinstance(problems, dict):
        message = (res.get("stderr") or res.get("stdout") or "").strip()
        raise CommandExecutionError(f"vmadm validate: {message or 'failed with exit status ' + str(res['retcode'])}")
    return dict(problems, valid=False)
