"""
Manage SmartOS virtual machines (OS zones) with ``vmadm`` from the global zone.

``present`` creates a VM from a ``vmadm create`` payload, or brings an
existing one in line with it in one ``vmadm update``: only the properties the
payload gives are compared; NICs are matched by interface name and updated
in place by MAC (``update_nics``) or added (``add_nics``).

:depends: the ``vmadm`` execution module of this formula
:platform: SmartOS global zone
"""

import logging

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


__virtualname__ = "smartos_vm"

# What vmadm cannot change on an existing VM.
IMMUTABLE = ("brand", "image_uuid", "dataset_uuid", "uuid", "zonename", "zonepath", "zfs_filesystem")
# Hashes updated key by key with vmadm's set_<name> actions.
HASHES = ("customer_metadata", "internal_metadata", "tags", "routes")
NIC_LISTS = ("allowed_ips", "ips", "gateways")
NIC_FLAGS = ("primary", "allow_ip_spoofing", "allow_mac_spoofing", "allow_dhcp_spoofing", "allow_restricted_traffic")
UNORDERED = ("allowed_ips",)


def __virtual__():
    if "vmadm.get" in __salt__:
        return __virtualname__
    return (False, "smartos_vm: needs the vmadm execution module (SmartOS global zone)")


def _ret(name):
    return {"name": name, "result": True, "changes": {}, "comment": ""}


def _fail(ret, message):
    ret["result"] = False
    ret["comment"] = str(message)
    return ret


def _norm(value):
    """A value as vmadm would store it: ``"1024"`` -> 1024, ``"true"`` -> True."""
    if isinstance(value, str):
        if value in ("true", "false"):
            return value == "true"
        if value.isdigit():
            return int(value)
        return value
    if isinstance(value, list):
        return [_norm(v) for v in value]
    if isinstance(value, dict):
        return {k: _norm(v) for k, v in value.items()}
    return value


def _same(want, have, unordered=False):
    want, have = _norm(want), _norm(have)
    if unordered and isinstance(want, list) and isinstance(have, list):
        return sorted(map(str, want)) == sorted(map(str, have))
    return want == have


def _nic_value(nic, key):
    if key in NIC_LISTS:
        return nic.get(key, [])
    if key in NIC_FLAGS:
        return nic.get(key, False)
    return nic.get(key)


def _nic_changes(config_nics, vm_nics, changes):
    """``update_nics`` and ``add_nics`` entries; record per-key changes."""
    if not isinstance(config_nics, list) or not all(isinstance(n, dict) for n in config_nics):
        raise SaltInvocationError("smartos_vm: config nics must be a list of NIC dicts")
    by_interface = {nic.get("interface"): nic for nic in vm_nics}
    updates, adds = [], []
    for index, want in enumerate(config_nics):
        interface = want.get("interface", f"net{index}")
        have = by_interface.get(interface)
        if have is None:
            adds.append(dict(want, interface=interface))
            changes[f"nics.{interface}"] = {"old": None, "new": dict(want, interface=interface)}
            continue
        if "mac" in want and str(want["mac"]).lower() != str(have.get("mac")).lower():
            raise SaltInvocationError(
                f"smartos_vm: nics.{interface}.mac differs: vmadm cannot change a NIC's MAC in place; "
                "remove the mac or recreate the NIC"
            )
        update = {}
        for key, value in want.items():
            if key in ("interface", "mac"):
                continue
            old = _nic_value(have, key)
            if not _same(value, old, unordered=key in UNORDERED):
                update[key] = value
                changes[f"nics.{interface}.{key}"] = {"old": old, "new": value}
        if update:
            updates.append({"mac": have["mac"], **update})
    return updates, adds


def _diff(name, config, vm):
    """The ``vmadm update`` payload and the per-key changes for an existing VM."""
    changes, payload = {}, {}
    for key in IMMUTABLE:
        if key in config:
            have = vm.get(key)
            if key == "dataset_uuid":
                have = vm.get("dataset_uuid", vm.get("image_uuid"))
            if not _same(config[key], have):
                raise SaltInvocationError(
                    f"smartos_vm: {name}: {key} differs ({have} in place, {config[key]} wanted): "
                    "vmadm cannot change it in place; delete and recreate the VM"
                )
    for key, want in config.items():
        if key in IMMUTABLE or key == "alias":
            continue
        if key == "nics":
            updates, adds = _nic_changes(want, vm.get("nics", []), changes)
            if updates:
                payload["update_nics"] = updates
            if adds:
                payload["add_nics"] = adds
        elif key in HASHES and isinstance(want, dict):
            have = vm.get(key) or {}
            wanted = {k: v for k, v in want.items() if not _same(v, have.get(k))}
            for item, value in wanted.items():
                changes[f"{key}.{item}"] = {"old": have.get(item), "new": value}
            if wanted:
                payload[f"set_{key}"] = wanted
        elif not _same(want, vm.get(key)):
            changes[key] = {"old": vm.get(key), "new": want}
            payload[key] = want
    return payload, changes


def _check_config(name, config):
    if not isinstance(config, dict):
        raise SaltInvocationError(f"smartos_vm: config must be a dict of vmadm properties, not {type(config).__name__}")
    if "alias" in config and config["alias"] != name:
        raise SaltInvocationError(
            f"smartos_vm: config alias {config['alias']!r} differs from the state's name {name!r} "
            "(the name is the alias; leave alias out of config)"
        )


def present(name, config, running=True):
    """
    Make sure a VM exists with this configuration (and runs).

    A missing VM is created from ``config`` (``vmadm create``). On an existing
    VM only the properties ``config`` gives are compared, and all differences
    go into one ``vmadm update``:

    - plain properties (``max_physical_memory: "1024"`` equals 1024);
    - ``customer_metadata``, ``tags``, ``routes``, ``internal_metadata``: the
      keys given are set (``set_<name>``), others are left alone;
    - ``nics``: matched by ``interface`` (``net0``, ``net1``... by position
      when not given); the keys given that differ are updated in place by MAC
      (``allowed_ips`` compared in any order); NICs not there are added;
    - ``brand``, ``image_uuid``, ``uuid``, ``zonepath``, ``zfs_filesystem``
      cannot change in place: a difference is an error.

    name
        The VM's alias.

    config
        The ``vmadm create`` payload: ``brand``, ``image_uuid``,
        ``max_physical_memory``, ``nics``, ``customer_metadata``, ``tags``...
        (no ``alias``: that is ``name``).

    running
        Start the VM when it is not running (default). ``False`` leaves its
        state as it is (``vmadm create`` boots a new VM unless ``autoboot``
        is false).

    .. code-block:: yaml

        ucarp-zone-present-zoneA:
          smartos_vm.present:
            - name: zoneA
            - config:
                brand: joyent
                image_uuid: d34c301e-10c3-11e4-9b79-5f67ca448df0
                max_physical_memory: 512
                nics:
                  - nic_tag: admin
                    ip: 192.0.2.11
                    netmask: 255.255.255.0
                    gateway: 192.0.2.1
                    primary: true
                    allow_mac_spoofing: true
                    allowed_ips:
                      - 192.0.2.100
    """
    _run()
    ret = _ret(name)
    try:
        _check_config(name, config)
        if not __salt__["vmadm.exists"](name):
            return _create(ret, name, config, running)
        vm = __salt__["vmadm.get"](name)
        payload, changes = _diff(name, config, vm)
        state = vm.get("state")
        start = running and state != "running"
        if start:
            changes["state"] = {"old": state, "new": "running"}
        if not changes:
            ret["comment"] = f"VM {name} is in the desired state"
            return ret
        if __opts__["test"]:
            ret["result"] = None
            ret["changes"] = changes
            ret["comment"] = f"VM {name} would be {_what(payload, start)}"
            return ret
        if payload:
            __salt__["vmadm.update"](name, payload)
            ret["changes"] = {k: v for k, v in changes.items() if k != "state"}
        if start:
            __salt__["vmadm.start"](name)
            ret["changes"]["state"] = changes["state"]
    except (CommandExecutionError, SaltInvocationError) as exc:
        return _fail(ret, exc)
    log.info("smartos_vm: %s %s", _what(payload, start), name)
    ret["comment"] = f"VM {name} {_what(payload, start)}"
    return ret


def _what(payload, start):
    return " and ".join(word for word, done in (("updated", payload), ("started", start)) if done)


def _create(ret, name, config, running):
    taken = __salt__["vmadm.lookup"](alias=name) if "vmadm.lookup" in __salt__ else []
    if taken:
        return _fail(ret, f"smartos_vm: the alias {name} names {len(taken)} VMs; give each VM its own alias")
    if __opts__["test"]:
        ret["result"] = None
        ret["changes"] = {"uuid": {"old": None, "new": config.get("uuid", "(assigned by vmadm)")}}
        ret["comment"] = f"VM {name} would be created"
        return ret
    uuid = __salt__["vmadm.create"](dict(config, alias=name))
    ret["changes"] = {"uuid": {"old": None, "new": uuid}}
    ret["comment"] = f"VM {name} created ({uuid})"
    if running:
        try:
            state = __salt__["vmadm.state"](uuid)
            if state != "running":
                __salt__["vmadm.start"](uuid)
                ret["changes"]["state"] = {"old": state, "new": "running"}
                ret["comment"] += " and started"
        except (CommandExecutionError, SaltInvocationError) as exc:
            return _fail(ret, f"VM {name} created ({uuid}) but not started: {exc}")
    return ret


def absent(name):
    """
    Make sure a VM does not exist (``vmadm delete``: stopped and destroyed).

    name
        The VM's alias or UUID.

    .. code-block:: yaml

        ucarp-zone-absent-zoneC:
          smartos_vm.absent:
            - name: zoneC
    """
    _run()
    ret = _ret(name)
    try:
        if not __salt__["vmadm.exists"](name):
            ret["comment"] = f"VM {name} is already absent"
            return ret
        uuid = __salt__["vmadm.uuid"](name)
        changes = {"uuid": {"old": uuid, "new": None}}
        if __opts__["test"]:
            ret["result"] = None
            ret["changes"] = changes
            ret["comment"] = f"VM {name} would be deleted"
            return ret
        __salt__["vmadm.delete"](uuid)
    except (CommandExecutionError, SaltInvocationError) as exc:
        return _fail(ret, exc)
    log.info("smartos_vm: deleted %s (%s)", name, uuid)
    ret["changes"] = changes
    ret["comment"] = f"VM {name} deleted"
    return ret


def _power(name, want, act):
    ret = _ret(name)
    try:
        if not __salt__["vmadm.exists"](name):
            return _fail(ret, f"VM {name} does not exist")
        state = __salt__["vmadm.state"](name)
        if state == want:
            ret["comment"] = f"VM {name} is {want}"
            return ret
        changes = {"state": {"old": state, "new": want}}
        if __opts__["test"]:
            ret["result"] = None
            ret["changes"] = changes
            ret["comment"] = f"VM {name} would be {'started' if want == 'running' else 'stopped'}"
            return ret
        __salt__[act](name)
    except (CommandExecutionError, SaltInvocationError) as exc:
        return _fail(ret, exc)
    log.info("smartos_vm: %s %s", act, name)
    ret["changes"] = changes
    ret["comment"] = f"VM {name} {'started' if want == 'running' else 'stopped'}"
    return ret


def running(name):
    """
    Make sure an existing VM is running (``vmadm start``).

    name
        The VM's alias or UUID.

    .. code-block:: yaml

        ucarp-zone-running-zoneA:
          smartos_vm.running:
            - name: zoneA
    """
    _run()
    return _power(name, "running", "vmadm.start")


def stopped(name):
    """
    Make sure an existing VM is stopped (``vmadm stop``: a clean shutdown).

    name
        The VM's alias or UUID.

    .. code-block:: yaml

        ucarp-zone-stopped-zoneA:
          smartos_vm.stopped:
            - name: zoneA
    """
    _run()
    return _power(name, "stopped", "vmadm.stop")
