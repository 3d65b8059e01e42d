"""
The UCARP cluster model: pillar in, a validated plan out.

Pure functions, no Salt calls: the ``ucarp`` execution module (on the
hypervisors) and the ``ucarp`` runner (on the master) share them through
``__utils__``.  ``normalise`` merges each cluster with the defaults, checks
everything and returns every problem at once with its pillar path; nothing
is applied while a problem remains.  ``host_plan`` says what one hypervisor
must run; the ``render_*`` functions make the files that go in the zones.
"""

import copy
import ipaddress
import re

# The records a zone keeps for the global zone's beacon, one line each,
# appended by ``ucarp-record``: ``<seq>@<epoch> <time> ...``.  The epoch is
# a random token the recorder draws again whenever the file's history may
# have gone back (see ``records_after``); lines written before epochs have none.
RECORD_KINDS = ("transition", "health")
EPOCH_RE = re.compile(r"^[0-9a-f]{16}$")
_HEAD = r"^(\d+)(?:@([0-9a-f]{16}))? (\d+) "
TRANSITION_RE = re.compile(_HEAD + r"(master|backup) (\S+) (\S+) (\d+) (\S+)$")
# What the agent did about a health change (ucarp-agent's note()).
HEALTH_ACTIONS = ("eligible", "ineligible", "stepped-down", "kept-vip")
HEALTH_RE = re.compile(_HEAD + rf"(healthy|sick) (\S+) ({'|'.join(HEALTH_ACTIONS)})(?: (.*))?$")
UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
RECORD_KEY_RE = re.compile(UUID_RE.pattern[:-1] + r"/[A-Za-z0-9][A-Za-z0-9_-]{0,62}/(transition|health)$")
PASSED_EPOCHS = 32  # epochs a cursor remembers having left (a file rolled back to one of them is not replayed)

PILLAR_ROOT = "ucarp:clusters"
STANDARD64 = "d34c301e-10c3-11e4-9b79-5f67ca448df0"

DEFAULTS = {
    "prefixlen": 24,
    "interface": "net0",
    "advbase": 1,
    # 1, not UCARP's 0: a planned switchover restarts the target with
    # advskew 0 and --preempt, which takes over only from a slower master.
    "advskew": 1,
    "deadratio": 3,
    "preempt": False,
    "allow_ip_spoofing": False,
    "zone": {
        "brand": "joyent",
        "image_uuid": STANDARD64,
        "max_physical_memory": 512,
        "nic_tag": "admin",
    },
    "on_master": [],
    "on_backup": [],
    "health": {},
    # The services the VIP fronts (besides those its checks and on_master
    # name): the ucarp instance starts after them and stops before them, so
    # a planned stop hands the VIP over while they still answer.
    "fronts": [],
}
HEALTH_DEFAULTS = {"interval": 2, "timeout": 2, "fall": 3, "rise": 2, "port": 9201}
HEALTH_KEYS = set(HEALTH_DEFAULTS) | {"checks"}
CHECK_KINDS = ("service", "tcp", "command")
CLUSTER_KEYS = set(DEFAULTS) | {"vip", "vhid", "password", "nodes", "segment"}
NODE_KEYS = {"host", "ip", "advskew", "zone"}
NIC_ZONE_KEYS = {"nic_tag", "vlan_id", "gateway", "mtu"}  # zone keys that shape the NIC

CLUSTER_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$")
ALIAS_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")
IFACE_RE = re.compile(r"^net[0-9]{1,2}$")
FMRI_RE = re.compile(r"^(svc:/)?[A-Za-z0-9][A-Za-z0-9_.,/-]*(:[A-Za-z0-9_.,-]+)?$")
# What the reactor can do in a zone when its role changes, with the zlogin
# function that does it.
ACTIONS = {"svc_enable": "zlogin.svc_enable", "svc_disable": "zlogin.svc_disable",
           "svc_restart": "zlogin.svc_restart", "run": "zlogin.run"}  # fmt: skip
MAX_PASSWORD_BYTES = 19  # UCARP 1.5.2: "Password too long"

# Where things go inside a zone.
ETC = "/opt/local/etc/ucarp"
LIB = "/opt/local/lib/ucarp"
MANIFEST_PATH = "/opt/local/lib/svc/manifest/ucarp.xml"
TRANSITIONS_DIR = "/var/db/ucarp"
SERVICE = "svc:/network/ucarp"
HOOK_FILES = ("ucarp-method", "ucarp-agent", "ucarp-record", "vip-hook", "vip-up", "vip-down", "peer-master")
# The ones a running instance has read: a change restarts it.  ucarp runs
# the others afresh at each transition, so their change needs no restart
# (and a restart of the master's ucarp would move its VIP).
RESTART_FILES = ("ucarp-method", "ucarp-agent")
# What a planned switchover asks of one node's ucarp, through the runtime
# override file its agent reads when the instance is refreshed.
OVERRIDES = ("preempt", "slow", "keep-vip")


class Problems(list):
    def add(self, path, message):
        self.append(f"{path}: {message}")


def _merge(base, override):
    out = copy.deepcopy(base)
    for key, value in (override or {}).items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _int_in(value, low, high):
    if isinstance(value, bool):
        return None
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    return value if isinstance(value, int) and low <= value <= high else None


def _ipv4(value):
    try:
        return ipaddress.IPv4Address(str(value).strip()) if value is not None else None
    except ValueError:
        return None


def _check_int(cluster, key, path, problems, low, high):
    value = _int_in(cluster.get(key), low, high)
    if value is None:
        problems.add(f"{path}:{key}", f"must be an integer from {low} to {high} (got {cluster.get(key)!r})")
    return value


def normalise(raw, defaults=None):
    """Return ``(model, problems)`` for the ``ucarp:clusters`` pillar value.

    ``model`` maps cluster names to normalised clusters (defaults merged,
    types fixed, the password left out: it stays in pillar); ``problems`` is
    a list of ``"<pillar path>: <what is wrong>"``, empty when all is well.
    """
    problems = Problems()
    defaults = _merge(DEFAULTS, defaults or {})
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        problems.add(PILLAR_ROOT, "must be a mapping of cluster names to clusters")
        return {}, problems
    model = {}
    for name in sorted(raw, key=str):
        path = f"{PILLAR_ROOT}:{name}"
        if not isinstance(name, str) or not CLUSTER_NAME_RE.match(name):
            problems.add(path, "cluster names are letters, digits, '_' and '-' (they name the SMF instance)")
            continue
        if not isinstance(raw[name], dict):
            problems.add(path, "must be a mapping (vip, vhid, password, nodes, ...)")
            continue
        cluster = _normalise_cluster(name, raw[name], defaults, path, problems)
        if cluster:
            model[name] = cluster
    _check_across(model, problems)
    return model, problems


def _normalise_cluster(name, given, defaults, path, problems):
    for key in sorted(set(given) - CLUSTER_KEYS, key=str):
        problems.add(f"{path}:{key}", f"unknown key (known: {', '.join(sorted(CLUSTER_KEYS))})")
    cluster = _merge(defaults, {k: v for k, v in given.items() if k in CLUSTER_KEYS})
    out = {"name": name, "fmri": f"{SERVICE}:{name}", "password_key": f"{path}:password"}

    vip = _ipv4(cluster.get("vip"))
    if cluster.get("vip") is None:
        problems.add(f"{path}:vip", "missing: the virtual IPv4 address the nodes share")
    elif vip is None:
        problems.add(f"{path}:vip", f"{cluster['vip']!r} is not an IPv4 address")
    prefixlen = _check_int(cluster, "prefixlen", path, problems, 1, 30)
    network = ipaddress.IPv4Network(f"{vip}/{prefixlen}", strict=False) if vip and prefixlen else None
    if network and vip in (network.network_address, network.broadcast_address):
        problems.add(f"{path}:vip", f"{vip} is the network or broadcast address of {network}")
    out.update(vip=str(vip) if vip else None, prefixlen=prefixlen, network=str(network) if network else None)
    out["netmask"] = str(network.netmask) if network else None

    if cluster.get("vhid") is None:
        problems.add(f"{path}:vhid", "missing: the virtual host ID, 1-255, unique per network segment")
        out["vhid"] = None
    else:
        out["vhid"] = _check_int(cluster, "vhid", path, problems, 1, 255)
    _check_password(cluster.get("password"), f"{path}:password", problems)
    out["advbase"] = _check_int(cluster, "advbase", path, problems, 1, 255)
    out["advskew"] = _check_int(cluster, "advskew", path, problems, 0, 254)
    out["deadratio"] = _check_int(cluster, "deadratio", path, problems, 1, 255)
    for key in ("preempt", "allow_ip_spoofing"):
        if not isinstance(cluster.get(key), bool):
            problems.add(f"{path}:{key}", f"must be true or false (got {cluster.get(key)!r})")
        out[key] = bool(cluster.get(key))
    iface = cluster.get("interface")
    if not isinstance(iface, str) or not IFACE_RE.match(iface):
        problems.add(f"{path}:interface", f"must be a zone NIC name such as net0 (got {iface!r})")
    out["interface"] = iface
    zone = cluster.get("zone")
    if not isinstance(zone, dict):
        problems.add(f"{path}:zone", "must be a mapping of vmadm properties")
        zone = {}
    out["zone"] = zone
    for key in ("on_master", "on_backup"):
        out[key] = _check_actions(cluster.get(key), f"{path}:{key}", problems)
    # An explicit empty health turns off checks the defaults would give.
    health = given["health"] if given.get("health", True) in (None, {}) else cluster.get("health")
    out["health"] = _check_health(health, out, f"{path}:health", problems)
    out["fronts"] = _fronts(cluster.get("fronts"), out, f"{path}:fronts", problems)
    segment = cluster.get("segment")
    if segment is None:
        segment = str(zone.get("nic_tag", "admin")) + (f"/vlan{zone['vlan_id']}" if zone.get("vlan_id") else "")
    out["segment"] = str(segment)
    out["nodes"] = _normalise_nodes(cluster.get("nodes"), out, network, f"{path}:nodes", problems)
    return out


def _fronts(given, cluster, path, problems):
    """The services the VIP fronts: ``fronts``, the checked services and the
    services ``on_master`` starts, as full FMRIs (``svc:/a/b:default``)."""
    fmris = []
    if not isinstance(given, list):
        problems.add(path, "must be a list of service FMRIs")
        given = []
    for i, fmri in enumerate(given):
        if not isinstance(fmri, str) or not FMRI_RE.match(fmri):
            problems.add(f"{path}:{i}", f"{fmri!r} is not a service FMRI such as svc:/network/http:apache")
        else:
            fmris.append(fmri)
    fmris += [c["fmri"] for c in (cluster["health"] or {}).get("checks", []) if c["kind"] == "service"]
    fmris += [a["arg"] for a in cluster["on_master"] if a["action"] in ("svc_enable", "svc_restart")]
    return sorted({f"svc:/{_fmri_key(f)}" for f in fmris})


def _check_actions(actions, path, problems):
    """``on_master`` / ``on_backup``: a list of one-key dicts such as
    ``{svc_enable: svc:/network/http:apache}`` or ``{run: "command"}``."""
    if not isinstance(actions, list):
        problems.add(path, "must be a list of actions")
        return []
    good = []
    for i, action in enumerate(actions):
        if not isinstance(action, dict) or len(action) != 1:
            problems.add(f"{path}:{i}", f"an action is one of {', '.join(ACTIONS)} with its argument")
            continue
        ((kind, arg),) = action.items()
        if kind not in ACTIONS:
            problems.add(f"{path}:{i}", f"unknown action {kind!r} (known: {', '.join(ACTIONS)})")
        elif kind != "run" and (not isinstance(arg, str) or not FMRI_RE.match(arg)):
            problems.add(f"{path}:{i}:{kind}", f"{arg!r} is not a service FMRI such as svc:/network/http:apache")
        elif kind == "run" and (not isinstance(arg, str) or not arg.strip() or "\0" in arg):
            problems.add(f"{path}:{i}:run", "must be a non-empty command line")
        else:
            good.append({"action": kind, "arg": arg})
    return good


def _check_health(health, cluster, path, problems):
    """``health``: the checks each node runs on itself, or None when there are none.

    A node is healthy while its checks pass; ``fall`` failures in a row make
    it sick (it gives up the VIP, or never takes it), ``rise`` successes in a
    row make it eligible again.  Each check is one of
    ``{service: <FMRI>}`` (must be online), ``{tcp: <port>}`` or
    ``{tcp: {port: <port>, address: node|vip|<IPv4>}}`` (must accept a
    connection; ``vip`` is checked only where the VIP is) and
    ``{command: <command line>}`` (must exit 0).
    """
    if health is None or health == {}:
        return None
    if not isinstance(health, dict):
        problems.add(path, "must be a mapping (checks, interval, timeout, fall, rise, port)")
        return None
    for key in sorted(set(health) - HEALTH_KEYS, key=str):
        problems.add(f"{path}:{key}", f"unknown key (known: {', '.join(sorted(HEALTH_KEYS))})")
    given = _merge(HEALTH_DEFAULTS, health)
    out = {}
    for key, (low, high) in {"interval": (1, 3600), "timeout": (1, 3600), "fall": (1, 100), "rise": (1, 100),
                             "port": (1, 65535)}.items():  # fmt: skip
        out[key] = _check_int(given, key, path, problems, low, high)
    checks = given.get("checks")
    if not isinstance(checks, list) or not checks:
        problems.add(f"{path}:checks", "must be a list of at least one check (service, tcp or command)")
        checks = []
    out["checks"] = []
    for i, check in enumerate(checks):
        cpath = f"{path}:checks:{i}"
        if not isinstance(check, dict) or len(check) != 1 or next(iter(check)) not in CHECK_KINDS:
            problems.add(cpath, f"a check is one of {', '.join(CHECK_KINDS)} with its argument")
            continue
        ((kind, arg),) = check.items()
        if kind == "service":
            if not isinstance(arg, str) or not FMRI_RE.match(arg):
                problems.add(f"{cpath}:service", f"{arg!r} is not a service FMRI such as svc:/network/http:apache")
                continue
            out["checks"].append({"kind": "service", "fmri": arg})
        elif kind == "command":
            if not isinstance(arg, str) or not arg.strip() or "\n" in arg or "\0" in arg:
                problems.add(f"{cpath}:command", "must be a one-line, non-empty command line")
                continue
            out["checks"].append({"kind": "command", "command": arg.strip()})
        else:
            tcp = _check_tcp(arg, cluster, f"{cpath}:tcp", problems)
            if tcp:
                out["checks"].append(tcp)
    checked = {_fmri_key(c["fmri"]) for c in out["checks"] if c["kind"] == "service"}
    for action in cluster.get("on_backup") or []:
        if action["action"] == "svc_disable" and _fmri_key(action["arg"]) in checked:
            problems.add(
                f"{path}:checks",
                f"{action['arg']} is checked for health but on_backup disables it:"
                " every backup would be unhealthy and none could take the VIP",
            )
    return out


def _fmri_key(fmri):
    """An FMRI as SMF matches it: ``svc:/`` optional, ``:default`` implied."""
    name = fmri.removeprefix("svc:/")
    return name if ":" in name else f"{name}:default"


def _check_tcp(arg, cluster, path, problems):
    spec = arg if isinstance(arg, dict) else {"port": arg}
    for key in sorted(set(spec) - {"port", "address"}, key=str):
        problems.add(f"{path}:{key}", "unknown key (known: address, port)")
    port = _int_in(spec.get("port"), 1, 65535)
    if port is None:
        problems.add(f"{path}:port", f"must be a TCP port from 1 to 65535 (got {spec.get('port')!r})")
    address = spec.get("address", "node")
    if address not in ("node", "vip") and _ipv4(address) is None:
        problems.add(f"{path}:address", f"must be node, vip or an IPv4 address (got {address!r})")
        return None
    if address not in ("node", "vip"):
        address = str(_ipv4(address))
        # The VIP by its address is the VIP: checked only where it is, or
        # every backup would be as sick as the master.
        if address == cluster["vip"]:
            address = "vip"
    return {"kind": "tcp", "port": port, "address": address} if port else None


def _check_password(password, path, problems):
    if password is None or password == "":
        problems.add(path, "missing or empty: the nodes authenticate their adverts with it")
    elif not isinstance(password, str):
        problems.add(path, "must be a string (quote it in YAML)")
    elif "\n" in password or "\0" in password:
        problems.add(path, "must not contain a newline or a NUL byte")
    elif len(password.encode("utf-8")) > MAX_PASSWORD_BYTES:
        nbytes = len(password.encode("utf-8"))
        problems.add(path, f"is {nbytes} bytes long; UCARP takes at most {MAX_PASSWORD_BYTES}")


def _normalise_nodes(nodes, cluster, network, path, problems):
    if not isinstance(nodes, dict) or len(nodes) < 2:
        count = len(nodes) if isinstance(nodes, dict) else 0
        problems.add(path, f"a cluster needs at least two nodes (got {count})")
        if not isinstance(nodes, dict):
            return {}
    out = {}
    seen_ips = {}
    for alias in sorted(nodes, key=str):
        npath = f"{path}:{alias}"
        node = nodes[alias]
        if not isinstance(alias, str) or not ALIAS_RE.match(alias):
            problems.add(npath, "node names are zone aliases: letters, digits, '.', '_' and '-'")
            continue
        if not isinstance(node, dict):
            problems.add(npath, "must be a mapping with host and ip")
            continue
        for key in sorted(set(node) - NODE_KEYS, key=str):
            problems.add(f"{npath}:{key}", f"unknown key (known: {', '.join(sorted(NODE_KEYS))})")
        host = node.get("host")
        if not isinstance(host, str) or not host.strip():
            problems.add(f"{npath}:host", "missing: the minion id of the global zone that hosts this node")
        ip = _ipv4(node.get("ip"))
        if node.get("ip") is None:
            problems.add(f"{npath}:ip", "missing: the zone's own IPv4 address")
        elif ip is None:
            problems.add(f"{npath}:ip", f"{node['ip']!r} is not an IPv4 address")
        elif cluster["vip"] and str(ip) == cluster["vip"]:
            problems.add(f"{npath}:ip", f"{ip} is the cluster's VIP; a node needs an address of its own")
        elif network and ip not in network:
            problems.add(f"{npath}:ip", f"{ip} is outside the VIP's subnet {network}")
        elif str(ip) in seen_ips:
            problems.add(f"{npath}:ip", f"{ip} is also the address of node {seen_ips[str(ip)]}")
        else:
            seen_ips[str(ip)] = alias
        advskew = cluster["advskew"]
        if "advskew" in node:
            advskew = _int_in(node["advskew"], 0, 254)
            if advskew is None:
                problems.add(f"{npath}:advskew", f"must be an integer from 0 to 254 (got {node['advskew']!r})")
        zone = node.get("zone", {})
        if not isinstance(zone, dict):
            problems.add(f"{npath}:zone", "must be a mapping of vmadm properties")
            zone = {}
        out[alias] = {"host": host, "ip": str(ip) if ip else None, "advskew": advskew, "zone": zone}
    return out


def _check_across(model, problems):
    """What no single cluster shows: VHID reuse, a zone described twice differently."""
    vhids = {}
    for name, cluster in model.items():
        key = (cluster["segment"], cluster["vhid"])
        if cluster["vhid"] is None:
            continue
        if key in vhids:
            problems.add(
                f"{PILLAR_ROOT}:{name}:vhid",
                f"{cluster['vhid']} is already used by cluster {vhids[key]} on segment {cluster['segment']}"
                " (a VHID must be unique per network segment)",
            )
        else:
            vhids[key] = name
    ports = {}
    for name, cluster in model.items():
        if not cluster.get("health"):
            continue
        for alias in cluster["nodes"]:
            key = (alias, cluster["health"]["port"])
            if key in ports:
                problems.add(
                    f"{PILLAR_ROOT}:{name}:health:port",
                    f"{key[1]} is also the health port of cluster {ports[key]} in zone {alias};"
                    " each cluster of a zone needs its own",
                )
            else:
                ports[key] = name
    zones = {}
    for name, cluster in model.items():
        for alias, node in cluster["nodes"].items():
            identity = (node["host"], node["ip"])
            if alias in zones and zones[alias][1] != identity:
                other, (host, ip) = zones[alias]
                problems.add(
                    f"{PILLAR_ROOT}:{name}:nodes:{alias}",
                    f"zone {alias} is also a node of cluster {other} with host {host} and ip {ip};"
                    " a zone has one host and one address",
                )
            zones.setdefault(alias, (name, identity))


def zone_config(model, alias):
    """The vmadm payload of the zone ``alias`` (all its clusters merged)."""
    clusters = [c for c in model.values() if alias in c["nodes"]]
    first = clusters[0]
    node = first["nodes"][alias]
    props = _merge(first["zone"], node["zone"])
    nic = {"interface": first["interface"], "nic_tag": props.pop("nic_tag", "admin")}
    for key in ("vlan_id", "gateway", "mtu"):
        if key in props:
            nic[key] = props.pop(key)
    nic.update(
        ip=node["ip"],
        netmask=first["netmask"],
        primary=True,
        # Least privilege for a floating VIP: allowed_ips, not allow_ip_spoofing.
        # UCARP adverts come from the CARP MAC 00:00:5e:00:00:<vhid>, so the NIC
        # must allow MAC spoofing or the nodes never hear each other.
        allowed_ips=sorted({c["vip"] for c in clusters}, key=ipaddress.IPv4Address),
        allow_mac_spoofing=True,
    )
    if any(c["allow_ip_spoofing"] for c in clusters):
        nic["allow_ip_spoofing"] = True
    config = dict(props, hostname=props.get("hostname", alias), nics=[nic])
    config.pop("alias", None)
    return config


def host_plan(model, host):
    """What the global zone ``host`` must run: its zones and its nodes."""
    zones, nodes = {}, []
    for name, cluster in model.items():
        for alias, node in cluster["nodes"].items():
            if node["host"] != host:
                continue
            zones.setdefault(alias, []).append(name)
            nodes.append(
                {
                    "cluster": name,
                    "alias": alias,
                    "fmri": cluster["fmri"],
                    "conf_path": node_files(name)["conf"],
                    "conf": render_options(cluster, alias),
                    "pass_path": node_files(name)["pass"],
                    "password_key": cluster["password_key"],
                    "checks_path": node_files(name)["checks"],
                    "checks": render_checks(cluster, alias),
                }
            )
    planned = []
    for alias, names in sorted(zones.items()):
        config = zone_config(model, alias)
        planned.append(
            {
                "alias": alias,
                "clusters": sorted(names),
                "config": config,
                "image": config.get("image_uuid") or config.get("dataset_uuid"),
                "manifest": render_manifest(sorted(names), {n: model[n]["fronts"] for n in names}),
                "fmris": [f"{SERVICE}:{n}" for n in sorted(names)],
            }
        )
    return {
        "zones": planned,
        # What vmadm create needs installed first (a fresh hypervisor has none).
        "images": sorted({zone["image"] for zone in planned if zone["image"]}),
        "nodes": nodes,
        "manifest_path": MANIFEST_PATH,
        "service": SERVICE,
        "lib": LIB,
        "hooks": [f"{LIB}/{name}" for name in HOOK_FILES],
        "restart_on": [f"{LIB}/{name}" for name in RESTART_FILES],
    }


def render_options(cluster, alias):
    """The instance's ucarp options file: one option per line, no secret."""
    node = cluster["nodes"][alias]
    lines = [
        f"# ucarp options of {cluster['fmri']} in zone {alias}. Managed by Salt: edit pillar, not this file.",
        f"--interface={cluster['interface']}",
        f"--srcip={node['ip']}",
        f"--vhid={cluster['vhid']}",
        f"--passfile={node_files(cluster['name'])['pass']}",
        f"--addr={cluster['vip']}",
        f"--advbase={cluster['advbase']}",
        f"--advskew={node['advskew']}",
        f"--deadratio={cluster['deadratio']}",
        f"--upscript={LIB}/vip-up",
        f"--downscript={LIB}/vip-down",
        f"--xparam={cluster['name']}:{cluster['vhid']}:{cluster['netmask']}",
        "--shutdown",
    ]
    if cluster["preempt"]:
        lines.append("--preempt")
    return "\n".join(lines) + "\n"


def render_checks(cluster, alias):
    """The instance's health checks file for the zone's agent, or None without checks."""
    health = cluster.get("health")
    if not health:
        return None
    node = cluster["nodes"][alias]
    lines = [
        f"# Health checks of {cluster['fmri']} in zone {alias}, read by {LIB}/ucarp-agent.",
        "# Managed by Salt: edit pillar, not this file.",
        f"interval {health['interval']}",
        f"timeout {health['timeout']}",
        f"fall {health['fall']}",
        f"rise {health['rise']}",
        f"listen {node['ip']} {health['port']}",
    ]
    peers = [peer for other, peer in sorted(cluster["nodes"].items()) if other != alias]
    lines += [f"peer {peer['ip']} {health['port']}" for peer in peers]
    for check in health["checks"]:
        if check["kind"] == "service":
            lines.append(f"check service {check['fmri']}")
        elif check["kind"] == "tcp":
            address = node["ip"] if check["address"] == "node" else check["address"]
            lines.append(f"check tcp {address} {check['port']}")
        else:
            lines.append(f"check command {check['command']}")
    return "\n".join(lines) + "\n"


def override_lines(cluster, mode, expires):
    """What the agent adds to ucarp's options for one step of a planned
    switchover or rollout, until ``expires`` (epoch seconds): after it the
    agent ignores the override, so one left by an interrupted step does not
    slow a later failover.

    ``preempt``: take the VIP from the (slower) master at its next advert;
    ``slow``: wait much longer than usual before taking over from a silent
    master; ``keep-vip``: restart without dropping the VIP this node holds
    (the old process is killed without its down hook, the new one starts
    without running it).
    """
    if mode == "preempt":
        lines = ["--preempt", "--advskew=0"]
    elif mode == "slow":
        lines = [f"--deadratio={min(255, cluster['deadratio'] * 3 + 2)}"]
    elif mode == "keep-vip":
        lines = ["keep-vip", "--neutral"]
    else:
        raise ValueError(f"unknown override {mode!r} (known: {', '.join(OVERRIDES)})")
    return [*lines, f"expires {int(expires)}"]


def override_info(stat, text, now):
    """What the agent makes of an override file, as ``ucarp.status`` shows it.

    ``stat`` is ``zlogin.file_stat``'s answer (None: no file), ``text`` the
    content. The agent trusts a regular file owned by root and writable by
    root alone, until its ``expires`` line: ``{"mode", "expires", "ignored"}``
    where ``ignored`` says why the agent does not use it (None: it does).
    """
    if stat is None:
        return None
    info = {"mode": None, "expires": None, "ignored": None}
    if stat["type"] != "file":
        info["ignored"] = f"not a regular file ({stat['type']})"
        return info
    if stat["uid"] != 0:
        info["ignored"] = f"owned by uid {stat['uid']}, not root"
        return info
    if int(stat["mode"], 8) & 0o022:
        info["ignored"] = f"writable by others (mode {stat['mode']})"
        return info
    lines = [line.strip() for line in (text or "").splitlines()]
    expires = [int(line.split()[1]) for line in lines if re.match(r"^expires [0-9]+$", line)]
    info["expires"] = expires[0] if expires else None
    if "keep-vip" in lines:
        info["mode"] = "keep-vip"
    elif "--preempt" in lines:
        info["mode"] = "preempt"
    elif any(line.startswith("--deadratio=") for line in lines):
        info["mode"] = "slow"
    if info["expires"] is None:
        info["ignored"] = "no expiry: left by an older formula or written by hand"
    elif info["expires"] < now:
        info["ignored"] = "expired: left by an interrupted switchover or rollout"
    return info


def render_manifest(instances, fronts=None):
    """The SMF manifest of ``network/ucarp`` with one instance per cluster;
    ``fronts`` maps an instance to the services its VIP fronts, which it
    starts after and stops before (an optional_all dependency: met by a
    service that is online, disabled or absent; their restarts do not
    restart ucarp)."""
    fronts = fronts or {}
    rows = []
    for name in instances:
        if not fronts.get(name):
            rows.append(f'    <instance name="{name}" enabled="false"/>')
            continue
        values = "\n".join(f'        <service_fmri value="{fmri}"/>' for fmri in fronts[name])
        rows.append(
            f'    <instance name="{name}" enabled="false">\n'
            '      <dependency name="fronts" grouping="optional_all" restart_on="none" type="service">\n'
            f"{values}\n"
            "      </dependency>\n"
            "    </instance>"
        )
    rows = "\n".join(rows)
    return f"""<?xml version="1.0"?>
<!DOCTYPE service_bundle SYSTEM "/usr/share/lib/xml/dtd/service_bundle.dtd.1">
<!--
  UCARP under SMF, one instance per cluster (VIP). Managed by Salt: pkgsrc's
  ucarp ships no manifest. The start method starts the instance's agent,
  which runs ucarp with the options in {ETC}/<instance>.conf
  while the node's health checks pass; refresh makes it re-read a planned
  switchover's override. The stop method stops the agent, which hands the
  VIP over to a backup first when this node holds it (no gap for clients),
  and waits for it.
-->
<service_bundle type="manifest" name="ucarp">
  <service name="network/ucarp" type="service" version="1">
    <dependency name="network" grouping="require_all" restart_on="error" type="service">
      <service_fmri value="svc:/milestone/network:default"/>
    </dependency>
    <dependency name="filesystem" grouping="require_all" restart_on="error" type="service">
      <service_fmri value="svc:/system/filesystem/local:default"/>
    </dependency>
    <exec_method type="method" name="start" exec="{LIB}/ucarp-method %i" timeout_seconds="60"/>
    <exec_method type="method" name="stop" exec="{LIB}/ucarp-method %i stop" timeout_seconds="60"/>
    <exec_method type="method" name="refresh" exec="{LIB}/ucarp-method %i refresh" timeout_seconds="60"/>
    <property_group name="startd" type="framework">
      <propval name="duration" type="astring" value="contract"/>
      <!-- The agent stops and restarts ucarp itself (health, switchover):
           that is not a fault of the instance. -->
      <propval name="ignore_error" type="astring" value="core,signal"/>
    </property_group>
{rows}
    <stability value="Evolving"/>
    <template>
      <common_name>
        <loctext xml:lang="C">UCARP virtual IP failover</loctext>
      </common_name>
    </template>
  </service>
</service_bundle>
"""


def transitions_path(cluster):
    """Where a zone's hooks record the transitions of ``cluster``."""
    return f"{TRANSITIONS_DIR}/{cluster}.transitions"


def node_files(cluster):
    """The files one cluster's node has in a zone (hooks aside)."""
    return {
        "conf": f"{ETC}/{cluster}.conf",
        "pass": f"{ETC}/{cluster}.pass",
        "checks": f"{ETC}/{cluster}.checks",
        "transitions": transitions_path(cluster),
        "health": health_path(cluster),
        # ucarp-record's note of the last record written to each
        "transitions_epoch": f"{transitions_path(cluster)}.epoch",
        "health_epoch": f"{health_path(cluster)}.epoch",
        "override": f"{TRANSITIONS_DIR}/{cluster}.override",
    }


def health_path(cluster):
    """Where a zone's agent records the health changes of ``cluster``."""
    return f"{TRANSITIONS_DIR}/{cluster}.health"


def health_actions():
    """What a health record's ``action`` may be (what the agent did about the change)."""
    return HEALTH_ACTIONS


# Records: one vocabulary for the hooks, the beacon, the module and the runner.


def record_kinds():
    """The kinds of record a node keeps: ``transition`` (its hooks, one per
    VIP change) and ``health`` (its agent, one per health change)."""
    return RECORD_KINDS


def record_path(kind, cluster):
    """Where a zone keeps the records of ``kind`` for ``cluster``."""
    if kind not in RECORD_KINDS:
        raise ValueError(f"unknown record kind {kind!r}")
    return transitions_path(cluster) if kind == "transition" else health_path(cluster)


def record_key(zone_uuid, cluster, kind):
    """The name of one node's records of one kind, the same on the
    hypervisor (the beacon's cursor, its acknowledgements) and on the
    master (the runner's cursor): ``<zone uuid>/<cluster>/<kind>``.  The
    zone's UUID, not its alias: a zone reprovisioned under another UUID
    starts afresh."""
    return f"{zone_uuid}/{cluster}/{kind}"


def is_record_key(key):
    """Whether ``key`` is a well-formed ``record_key``."""
    return isinstance(key, str) and bool(RECORD_KEY_RE.match(key))


def is_uuid(value):
    """Whether ``value`` is a VM UUID as vmadm writes them."""
    return isinstance(value, str) and bool(UUID_RE.match(value))


def is_alias(value):
    """Whether ``value`` is a zone alias the formula accepts."""
    return isinstance(value, str) and bool(ALIAS_RE.match(value))


def migrated_record_key(key):
    """``key`` as a ``record_key``: the same, or one written before kinds
    were named (``<uuid>/<cluster>`` for transitions); None if it is neither."""
    if is_record_key(key):
        return key
    if isinstance(key, str) and is_record_key(f"{key}/transition"):
        return f"{key}/transition"
    return None


def record_tag(kind, cluster, record):
    """The event tag a record is sent as: ``ucarp/<cluster>/<role>`` for a
    transition, ``ucarp/<cluster>/health/<state>`` for a health change."""
    if kind == "transition":
        return f"ucarp/{cluster}/{record['role']}"
    return f"ucarp/{cluster}/health/{record['state']}"


def record_fields(kind):
    """The fields of a record of ``kind`` besides ``epoch``, ``seq`` and ``ts``."""
    return ("role", "vhid", "interface") if kind == "transition" else ("state", "action", "detail")


def parse_records(kind, text, cluster, vip=None):
    """The well-formed records of ``cluster`` in a record file, in order:
    epochs as they first appear in the file, each by number.

    The file is the zone's: lines that do not parse, or that name another
    cluster (or, for transitions, another VIP), are ignored; of two lines with
    the same epoch and number the last is kept.
    """
    found = {}
    pattern = TRANSITION_RE if kind == "transition" else HEALTH_RE
    for line in text.splitlines():
        match = pattern.match(line.strip())
        if not match:
            continue
        seq, epoch, ts = int(match.group(1)), match.group(2) or "", int(match.group(3))
        if kind == "transition":
            role, name, address, vhid, iface = match.groups()[3:]
            if name != cluster or address != vip:
                continue
            record = {"role": role, "vhid": int(vhid), "interface": iface}
        else:
            state, name, action, detail = match.groups()[3:]
            if name != cluster:
                continue
            record = {"state": state, "action": action, "detail": (detail or "").strip() or None}
        found.setdefault(epoch, {})[seq] = dict(record, epoch=epoch, seq=seq, ts=ts)
    return [each[seq] for each in found.values() for seq in sorted(each)]


def parse_transitions(text, cluster, vip):
    """``parse_records`` of a transitions file."""
    return parse_records("transition", text, cluster, vip)


def parse_health(text, cluster):
    """``parse_records`` of a health file."""
    return parse_records("health", text, cluster)


def cursor(value):
    """A reader's place in a node's records, well-formed, or None (nothing read yet).

    ``{"epoch", "seq", "passed"}``: the last record taken, and the epochs
    left before it (at most ``PASSED_EPOCHS``).  A bare number is a cursor
    from before epochs.
    """
    if isinstance(value, bool):
        return None
    if isinstance(value, int) and value >= 0:
        return {"epoch": "", "seq": value, "passed": []}
    if not isinstance(value, dict):
        return None
    epoch, seq, passed = value.get("epoch", ""), value.get("seq"), value.get("passed", [])
    if not (epoch == "" or (isinstance(epoch, str) and EPOCH_RE.match(epoch))):
        return None
    if isinstance(seq, bool) or not isinstance(seq, int) or seq < 0 or not isinstance(passed, list):
        return None
    passed = [p for p in passed if isinstance(p, str) and (p == "" or EPOCH_RE.match(p)) and p != epoch]
    return {"epoch": epoch, "seq": seq, "passed": passed[-PASSED_EPOCHS:]}


def covers(cur, record):
    """Whether the record ``{"epoch", "seq"}`` is at or before the cursor:
    the cursor's epoch up to its number, or an epoch it has left."""
    cur = cursor(cur)
    if cur is None:
        return False
    epoch = record.get("epoch", "")
    if epoch == cur["epoch"]:
        return record["seq"] <= cur["seq"]
    return epoch in cur["passed"]


def advance(cur, record):
    """The cursor once ``record`` is taken.  A record of an epoch the cursor
    has left changes nothing (a late acknowledgement, say)."""
    cur = cursor(cur)
    epoch, seq = record.get("epoch", ""), record["seq"]
    if cur is None:
        return {"epoch": epoch, "seq": seq, "passed": []}
    if epoch == cur["epoch"]:
        return dict(cur, seq=max(seq, cur["seq"]))
    if epoch in cur["passed"]:
        return cur
    return {"epoch": epoch, "seq": seq, "passed": (cur["passed"] + [cur["epoch"]])[-PASSED_EPOCHS:]}


def records_after(records, cur, limit=None):
    """The records not yet taken by the cursor ``cur``, in file order.

    They are the ones after the last record the cursor covers.  The
    recorder starts a new epoch whenever the file may have gone back
    (emptied, replaced by an older copy, the zone rolled back to a
    snapshot or reprovisioned, the instance started again), so:

    - a file emptied or new: every record is after the cursor;
    - a file rolled back: what the cursor covers is not given again, and
      what was written since (a new epoch) is.

    ``limit``: at most this many, the newest.
    """
    last = -1
    for index, record in enumerate(records):
        if covers(cur, record):
            last = index
    found = records[last + 1 :]
    return found[-limit:] if limit else found


def action_function(kind):
    """The zlogin execution function that performs an ``on_master``/``on_backup`` action."""
    return ACTIONS[kind]
