"""VM objects as vmadm shows them: defaults, validation, updates.

Validation follows VM.js: every bad value is collected and reported at once
as ``Invalid value(s) for: a,b``, then missing properties as ``Missing
required properties: a,b``; unknown properties are dropped silently.
"""

import datetime
import ipaddress
import random
import re
import uuid as uuidlib

from . import gz
from .common import ToolError

BRANDS = ("joyent", "joyent-minimal")
OTHER_BRANDS = ("lx", "kvm", "bhyve", "builder")
UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
MAC_RE = re.compile(r"^([0-9a-f]{2}:){5}[0-9a-f]{2}$")
HOSTNAME_RE = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$")
ALIAS_RE = re.compile(r"^[^\x00-\x1f\x7f]{1,256}$")

INTEGER_PROPS = (
    "max_physical_memory", "max_locked_memory", "max_swap", "max_lwps", "quota",
    "cpu_shares", "cpu_cap", "zfs_io_priority", "max_shm_memory", "max_msg_ids",
    "max_sem_ids", "max_shm_ids", "tmpfs",
)  # fmt: skip
STRING_PROPS = ("alias", "hostname", "dns_domain", "owner_uuid", "billing_id", "package_name", "package_version")
BOOLEAN_PROPS = ("autoboot", "firewall_enabled", "do_not_inventory", "archive_on_delete", "indestructible_zoneroot")
HASH_PROPS = ("customer_metadata", "internal_metadata", "tags", "routes")
NIC_BOOLEANS = ("primary", "allow_ip_spoofing", "allow_mac_spoofing", "allow_dhcp_spoofing", "allow_restricted_traffic")
NIC_PROPS = (
    "interface", "mac", "nic_tag", "ip", "ips", "netmask", "gateway", "gateways", "vlan_id", "mtu",
    "allowed_ips", "model", "network_uuid", *NIC_BOOLEANS,
)  # fmt: skip
CREATE_ONLY = ("uuid", "brand", "image_uuid", "dataset_uuid", "zonename", "zonepath")
UPDATE_ACTIONS = (
    "add_nics", "remove_nics", "update_nics",
    "set_customer_metadata", "remove_customer_metadata",
    "set_internal_metadata", "remove_internal_metadata",
    "set_tags", "remove_tags", "set_routes", "remove_routes",
)  # fmt: skip
MAX_ALLOWED_IPS = 13


def now():
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _integer(value):
    if isinstance(value, bool):
        return None
    if isinstance(value, int) and value >= 0:
        return value
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return None


def _boolean(value):
    if isinstance(value, bool):
        return value
    if value in ("true", "false"):
        return value == "true"
    return None


def _ipv4(value):
    try:
        return str(ipaddress.IPv4Address(value))
    except (ipaddress.AddressValueError, ValueError, TypeError):
        return None


def _netmask(value):
    try:
        return str(ipaddress.IPv4Network(f"0.0.0.0/{value}").netmask)
    except (ipaddress.NetmaskValueError, ValueError, TypeError):
        return None


def random_mac():
    return "90:b8:d0:" + ":".join(f"{random.randrange(256):02x}" for _ in range(3))


class Errors:
    def __init__(self):
        self.bad = []
        self.missing = []

    def raise_any(self):
        if self.bad:
            raise ToolError("Invalid value(s) for: " + ",".join(self.bad), 1)
        if self.missing:
            raise ToolError("Missing required properties: " + ",".join(self.missing), 1)


def _check_nic(nic, where, errors, nic_tags, update=False):
    """Validate and normalise one NIC object in place; record problems."""
    if not isinstance(nic, dict):
        errors.bad.append(where)
        return {}
    out = {k: v for k, v in nic.items() if k in NIC_PROPS}
    for key in NIC_BOOLEANS:
        if key in out:
            value = _boolean(out[key])
            if value is None:
                errors.bad.append(f"{where}.{key}")
            else:
                out[key] = value
    if "mac" in out:
        mac = str(out["mac"]).lower()
        if not MAC_RE.match(mac):
            errors.bad.append(f"{where}.mac")
        out["mac"] = mac
    if "nic_tag" in out:
        if not isinstance(out["nic_tag"], str) or out["nic_tag"] not in nic_tags:
            raise ToolError(f'Invalid nic tag "{out["nic_tag"]}"', 1)
    elif not update:
        errors.missing.append(f"{where}.nic_tag")
    if "ip" in out and out["ip"] != "dhcp":
        ip = _ipv4(out["ip"])
        if ip is None:
            errors.bad.append(f"{where}.ip")
        else:
            out["ip"] = ip
    for key in ("netmask",):
        if key in out:
            mask = _netmask(out[key])
            if mask is None:
                errors.bad.append(f"{where}.{key}")
            else:
                out[key] = mask
    if "gateway" in out and _ipv4(out["gateway"]) is None:
        errors.bad.append(f"{where}.gateway")
    if "ips" in out:
        if not isinstance(out["ips"], list):
            errors.bad.append(f"{where}.ips")
        else:
            for item in out["ips"]:
                if item in ("dhcp", "addrconf"):
                    continue
                try:
                    ipaddress.IPv4Interface(item)
                    if "/" not in str(item):
                        raise ValueError(item)
                except (ValueError, TypeError):
                    errors.bad.append(f"{where}.ips")
                    break
    if "allowed_ips" in out:
        items = out["allowed_ips"]
        if not isinstance(items, list) or len(items) > MAX_ALLOWED_IPS:
            errors.bad.append(f"{where}.allowed_ips")
        else:
            for item in items:
                try:
                    ipaddress.ip_network(item, strict=False)
                except (ValueError, TypeError):
                    errors.bad.append(f"{where}.allowed_ips")
                    break
    for key in ("vlan_id", "mtu"):
        if key in out and _integer(out[key]) is None:
            errors.bad.append(f"{where}.{key}")
    return out


def _complete_nic(nic, index):
    """Fill in what vmadm derives: interface, MAC, ip/netmask <-> ips."""
    nic.setdefault("interface", f"net{index}")
    nic.setdefault("mac", random_mac())
    if nic.get("ips") and not nic.get("ip"):
        first = nic["ips"][0]
        if first in ("dhcp", "addrconf"):
            nic["ip"] = "dhcp"
        else:
            iface = ipaddress.IPv4Interface(first)
            nic["ip"], nic["netmask"] = str(iface.ip), str(iface.netmask)
    elif nic.get("ip") and not nic.get("ips"):
        if nic["ip"] == "dhcp":
            nic["ips"] = ["dhcp"]
        else:
            mask = nic.get("netmask") or "255.255.255.0"
            nic["netmask"] = mask
            nic["ips"] = [str(ipaddress.IPv4Interface(f"{nic['ip']}/{mask}"))]
    if nic.get("gateway") and not nic.get("gateways"):
        nic["gateways"] = [nic["gateway"]]
    return nic


def _check_common(payload, errors):
    for key in INTEGER_PROPS:
        if key in payload:
            value = _integer(payload[key])
            if value is None:
                errors.bad.append(key)
            else:
                payload[key] = value
    for key in BOOLEAN_PROPS:
        if key in payload:
            value = _boolean(payload[key])
            if value is None:
                errors.bad.append(key)
            else:
                payload[key] = value
    for key in STRING_PROPS:
        if key in payload and not isinstance(payload[key], str):
            errors.bad.append(key)
    if isinstance(payload.get("alias"), str) and not ALIAS_RE.match(payload["alias"]):
        errors.bad.append("alias")
    if isinstance(payload.get("hostname"), str) and not HOSTNAME_RE.match(payload["hostname"]):
        errors.bad.append("hostname")
    if "resolvers" in payload:
        if not isinstance(payload["resolvers"], list) or any(_ipv4(r) is None for r in payload["resolvers"]):
            errors.bad.append("resolvers")
    for key in HASH_PROPS:
        if key in payload and not isinstance(payload[key], dict):
            errors.bad.append(key)


def validate_create(payload, nic_tags):
    """Return a complete, normalised VM object or raise ToolError."""
    if not isinstance(payload, dict):
        raise ToolError("Invalid payload: a JSON object is required", 1)
    errors = Errors()
    payload = dict(payload)
    if "dataset_uuid" in payload and "image_uuid" not in payload:
        payload["image_uuid"] = payload["dataset_uuid"]
    brand = payload.get("brand")
    if brand is None:
        errors.missing.append("brand")
    elif brand in OTHER_BRANDS:
        raise ToolError(f'Invalid brand while validating payload: "{brand}" (this test bed runs OS zones only)', 1)
    elif brand not in BRANDS:
        raise ToolError(f"Invalid brand while validating payload: {brand!r}".replace("'", '"'), 1)
    if "uuid" in payload and (not isinstance(payload["uuid"], str) or not UUID_RE.match(payload["uuid"])):
        errors.bad.append("uuid")
    if "image_uuid" not in payload:
        if brand in BRANDS:
            errors.missing.append("image_uuid")
    elif not isinstance(payload["image_uuid"], str) or not UUID_RE.match(payload["image_uuid"]):
        errors.bad.append("image_uuid")
    elif gz.image(payload["image_uuid"]) is None:
        errors.bad.append("image_uuid")
    _check_common(payload, errors)
    nics = payload.get("nics", [])
    if not isinstance(nics, list):
        errors.bad.append("nics")
        nics = []
    checked = [_check_nic(n, f"nics.{i}", errors, nic_tags) for i, n in enumerate(nics)]
    errors.raise_any()
    return build(payload, checked)


def build(payload, nics):
    uuid = payload.get("uuid") or str(uuidlib.uuid4())
    memory = payload.get("max_physical_memory", 256)
    stamp = now()
    server = gz.server()
    vm = {
        "uuid": uuid,
        "alias": payload.get("alias"),
        "hostname": payload.get("hostname", uuid),
        "brand": payload["brand"],
        "type": "OS",
        "image_uuid": payload["image_uuid"],
        "zonename": uuid,
        # SmartOS: /zones/<uuid>; here the zone's own directory in this global
        # zone's state, so that <zonepath>/root/var is the zone's /var as on SmartOS.
        "zonepath": gz.zone_dir(uuid),
        "zpool": "zones",
        "zfs_filesystem": f"zones/{uuid}",
        "autoboot": payload.get("autoboot", True),
        "max_physical_memory": memory,
        "max_locked_memory": payload.get("max_locked_memory", memory),
        "max_swap": payload.get("max_swap", max(memory, 256)),
        "max_lwps": payload.get("max_lwps", 2000),
        "quota": payload.get("quota", 10),
        "cpu_shares": payload.get("cpu_shares", 100),
        "zfs_io_priority": payload.get("zfs_io_priority", 100),
        "tmpfs": payload.get("tmpfs", memory),
        "dns_domain": payload.get("dns_domain", "local"),
        "resolvers": payload.get("resolvers", []),
        "owner_uuid": payload.get("owner_uuid", "00000000-0000-0000-0000-000000000000"),
        "billing_id": payload.get("billing_id", "00000000-0000-0000-0000-000000000000"),
        "limit_priv": "default",
        "firewall_enabled": payload.get("firewall_enabled", False),
        "customer_metadata": payload.get("customer_metadata", {}),
        "internal_metadata": payload.get("internal_metadata", {}),
        "tags": payload.get("tags", {}),
        "routes": payload.get("routes", {}),
        "datasets": [],
        "snapshots": [],
        "server_uuid": server["uuid"],
        "platform_buildstamp": "20261101T000000Z",
        "create_timestamp": stamp,
        "last_modified": stamp,
        "nics": [],
    }
    for key in ("cpu_cap", "max_shm_memory", "max_msg_ids", "max_sem_ids", "max_shm_ids", "package_name"):
        if key in payload:
            vm[key] = payload[key]
    if vm["alias"] is None:
        del vm["alias"]
    for index, nic in enumerate(nics):
        vm["nics"].append(_complete_nic(nic, index))
    if vm["nics"] and not any(n.get("primary") for n in vm["nics"]):
        vm["nics"][0]["primary"] = True
    return vm


def apply_update(vm, payload, nic_tags):
    """Apply a vmadm update payload to ``vm`` in place.

    Returns the set of what changed: ``{"nics"}`` when NIC link protection or
    addresses changed, property names otherwise.
    """
    if not isinstance(payload, dict):
        raise ToolError("Invalid payload: a JSON object is required", 1)
    errors = Errors()
    payload = dict(payload)
    for key in CREATE_ONLY:
        if key in payload:
            errors.bad.append(key)
    _check_common(payload, errors)
    macs = {n["mac"]: n for n in vm.get("nics", [])}
    updates = []
    for i, nic in enumerate(payload.get("update_nics") or []):
        checked = _check_nic(nic, f"update_nics.{i}", errors, nic_tags, update=True)
        if "mac" not in checked:
            errors.missing.append(f"update_nics.{i}.mac")
        elif checked["mac"] not in macs:
            errors.bad.append(f"update_nics.{i}.mac")
        updates.append(checked)
    adds = [_check_nic(n, f"add_nics.{i}", errors, nic_tags) for i, n in enumerate(payload.get("add_nics") or [])]
    removes = payload.get("remove_nics") or []
    if not isinstance(removes, list) or any(str(m).lower() not in macs for m in removes):
        errors.bad.append("remove_nics")
    errors.raise_any()

    changed = set()
    for key in INTEGER_PROPS + STRING_PROPS + BOOLEAN_PROPS + ("resolvers",):
        if key in payload and vm.get(key) != payload[key]:
            vm[key] = payload[key]
            changed.add(key)
    for key in HASH_PROPS:
        if key in payload:
            vm[key] = payload[key]
            changed.add(key)
        for action, remove in ((f"set_{key}", False), (f"remove_{key}", True)):
            if action not in payload:
                continue
            value = payload[action]
            if remove:
                for name in value if isinstance(value, list) else []:
                    vm.setdefault(key, {}).pop(name, None)
            elif isinstance(value, dict):
                vm.setdefault(key, {}).update(value)
            changed.add(key)
    for update in updates:
        nic = macs[update["mac"]]
        for key, value in update.items():
            if nic.get(key) != value:
                nic[key] = value
                changed.add("nics")
        if "ip" in update or "netmask" in update:
            nic.pop("ips", None)
        if "ips" in update:
            nic.pop("ip", None)
        _complete_nic(nic, vm["nics"].index(nic))
    if removes:
        vm["nics"] = [n for n in vm["nics"] if n["mac"] not in {m.lower() for m in removes}]
        changed.add("nics")
    for nic in adds:
        vm["nics"].append(_complete_nic(nic, len(vm["nics"])))
        changed.add("nics")
    vm["last_modified"] = now()
    return changed
