"""Simulated illumos ``ifconfig(8)`` as seen inside a SmartOS zone (IPv4 only).

A zone is a Linux network namespace whose NIC is a link named ``net0``.  The
illumos model is mapped onto Linux like this:

* A physical interface (``net0``) is the Linux link; its address is the
  kernel address labelled ``net0``.  ``lo`` is shown as ``lo0``.
* A logical interface ``net0:N`` that is UP is a kernel address on ``net0``
  labelled ``net0:N``.  What is UP is always read back from the kernel
  (rtnetlink, ``rtnetlink.py``), so the display stays right even if the state file is
  lost.
* Every logical interface's configuration is recorded in the volatile state
  file ``zone_path("run/smartos-sim/ifconfig.state")``, so one that is plumbed
  but down (or unconfigured: ``inet 0.0.0.0 netmask 0``) lives only there;
  ``down`` removes the kernel address but keeps the configuration.  If the
  file is lost, the UP interfaces are still read from the kernel; if a
  kernel address vanishes, its interface shows as down.  Every command holds an
  ``fcntl`` lock (``ifconfig.state.lock`` next to it) for its whole run, so
  hooks running at the same time do not lose each other's updates.

Arguments are processed in order, as illumos ``ifconfig.c`` does: the
``netmask`` value is scanned first, an address is created when the next
keyword is reached, ``addif`` switches the working interface to the new
logical interface.  Messages and exit codes follow illumos-gate
``usr/src/cmd/cmd-inet/usr.sbin/ifconfig/ifconfig.c`` and libipadm's
``ipadm_status2str()`` texts.

Not simulated (rejected with exit 1): IPv6 (``inet6``), destination
addresses, unplumbing a physical interface, and the rarely used keywords
(``mtu``, ``metric``, ``group``, ``zone``, ``ether <mac>``...).
"""

import fcntl
import os
import sys

from smartos_sim import rtnetlink
from smartos_sim.common import ToolError, zone_path

STATE_FILE = ("run", "smartos-sim", "ifconfig.state")


def _ipv4(value):
    """``ipaddress.IPv4Address``, imported on first use: ``ifconfig -a`` (every
    ``ucarp.status`` runs it in each zone) needs no address arithmetic."""
    import ipaddress

    return ipaddress.IPv4Address(value)


# Interface flags (illumos <net/if.h>), in ifconfig.c's if_flags_tbl order.
IFF_UP = 0x1
IFF_BROADCAST = 0x2
IFF_LOOPBACK = 0x8
IFF_RUNNING = 0x40
IFF_MULTICAST = 0x800
IFF_IPV4 = 0x1000000
IFF_VIRTUAL = 0x2000000000
IFF_L3PROTECT = 0x40000000000
FLAG_NAMES = (
    (IFF_UP, "UP"),
    (IFF_BROADCAST, "BROADCAST"),
    (IFF_LOOPBACK, "LOOPBACK"),
    (IFF_RUNNING, "RUNNING"),
    (IFF_MULTICAST, "MULTICAST"),
    (IFF_IPV4, "IPv4"),
    (IFF_VIRTUAL, "VIRTUAL"),
    (IFF_L3PROTECT, "L3PROTECT"),
)

LOOPBACK_MTU = 8232
CREATE_FAILED = "could not create address"
LIFNAMSIZ = 32
MAX_LIF = 8191

# cmds[] keywords of ifconfig.c this simulation does not implement.
UNSUPPORTED_NEXTARG = {
    "metric",
    "mtu",
    "index",
    "subnet",
    "token",
    "tsrc",
    "tdst",
    "encr_auth_algs",
    "encr_algs",
    "auth_algs",
    "modinsert",
    "modremove",
    "group",
    "destination",
    "zone",
    "usesrc",
    "encaplimit",
    "thoplimit",
}
UNSUPPORTED_FLAGS = {
    "trailers",
    "-trailers",
    "arp",
    "-arp",
    "router",
    "-router",
    "private",
    "-private",
    "xmit",
    "-xmit",
    "-nud",
    "nud",
    "anycast",
    "-anycast",
    "local",
    "-local",
    "deprecated",
    "-deprecated",
    "preferred",
    "-preferred",
    "debug",
    "verbose",
    "auto-revarp",
    "modlist",
    "failover",
    "-failover",
    "standby",
    "-standby",
    "failed",
    "-failed",
    "configinfo",
    "-encaplimit",
    "-zone",
    "all-zones",
    "ether",
    "ipmp",
    "dhcp",
    "auto-dhcp",
}

USAGE = """usage: ifconfig <interface> | -a[ 4 | 6 | D ][ u | d ][ Z ]
\t[ <addr_family> ]
\t[ <address>[/<prefix_length>] [ <dest_address> ] ]
\t[ set [ <address>][/<prefix_length>] ] [ <address>/<prefix_length>] ]
\t[ addif <address>[/<prefix_length>]  [ <dest_address> ] ]
\t[ removeif <address>[/<prefix_length>] ]
\t[ broadcast <broad_addr> ]
\t[ netmask <mask> ]
\t[ plumb ] [ unplumb ]
\t[ up ] [ down ]
"""

# Names and numbers are checked with str methods, not ``re``: importing it
# costs ``ifconfig -a`` (every ucarp.status runs it in each zone) as much as
# all its work.
LETTERS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
DIGITS = frozenset("0123456789")
LINKNAME_CHARS = LETTERS | DIGITS | {"_", "."}


def is_digits(text):
    """One or more ASCII digits."""
    return bool(text) and all(c in DIGITS for c in text)


def is_linkname(name):
    """A datalink name: a letter, letters, digits, ``_`` or ``.``, a digit."""
    return len(name) >= 2 and name[0] in LETTERS and name[-1] in DIGITS and all(c in LINKNAME_CHARS for c in name)


def split_ifname(name):
    """``(link, number)`` of an interface name ``link`` or ``link:N`` (the
    number as written, None without one), or None for another name."""
    link, colon, number = name.partition(":")
    if not is_linkname(link) or (colon and not is_digits(number)):
        return None
    return link, number if colon else None


class Exit(Exception):
    """Stop the command with ``code`` (the messages were already printed)."""

    def __init__(self, code):
        super().__init__(code)
        self.code = code


def err(message):
    sys.stdout.flush()
    print(message, file=sys.stderr)


def die(message, code=1):
    err(message)
    raise Exit(code)


# ---------------------------------------------------------------- addresses


def mask_of(prefix):
    return (0xFFFFFFFF << (32 - prefix)) & 0xFFFFFFFF if prefix else 0


def prefix_of(mask):
    """Prefix length of a contiguous netmask, or None."""
    inverted = ~mask & 0xFFFFFFFF
    if inverted & (inverted + 1):
        return None
    return 32 - inverted.bit_length()


def broadcast_of(addr, prefix):
    if not addr or prefix is None:
        return None
    value = int(_ipv4(addr))
    return str(_ipv4(value | (~mask_of(prefix) & 0xFFFFFFFF)))


def classful_prefix(addr):
    """The netmask the kernel infers when none is given (IP address classes)."""
    first = int(addr.split(".")[0])
    if first < 128:
        return 8
    if first < 192:
        return 16
    if first < 224:
        return 24
    return 32


HEX_DIGITS = DIGITS | frozenset("abcdefABCDEF")


def parse_inet(text):
    """An IPv4 address as ``in_getaddr`` accepts it, or None."""
    digits = text[2:]
    if text[:2] in ("0x", "0X") and 1 <= len(digits) <= 8 and all(c in HEX_DIGITS for c in digits):
        return str(_ipv4(int(digits, 16)))
    parts = text.split(".")
    if len(parts) == 4 and all(len(p) <= 3 and is_digits(p) for p in parts):
        if all(int(p) <= 255 for p in parts):
            return ".".join(str(int(p)) for p in parts)
    return None


def in_getaddr(text, allow_prefix):
    """Parse ``<addr>[/<n>]``; returns ``(addr, prefix or None)``."""
    prefix = None
    addr_text = text
    if allow_prefix:
        if "/" in text:
            addr_text, _, plen = text.partition("/")
            sign = plen[:1] if plen[:1] in ("+", "-") else ""
            rest = plen[len(sign) :]
            digits = rest[: next((i for i, c in enumerate(rest) if c not in DIGITS), len(rest))]
            if not digits or not 0 <= int(sign + digits) <= 32:  # strtol's number, what follows ignored
                die(f"ifconfig: Bad prefix length in {text}")
            prefix = int(sign + digits)
    elif "/" in text:
        die(f"ifconfig: {text}: unexpected '/'")
    addr = parse_inet(addr_text)
    if addr is None:
        die(f"ifconfig: {text}: bad address")
    return addr, prefix


def netmasks_lookup(addr):
    """getnetmaskbyaddr(3SOCKET) against the zone's /etc/inet/netmasks."""
    value = int(_ipv4(addr))
    for rel in ("etc/inet/netmasks", "etc/netmasks"):
        try:
            with open(zone_path(rel), encoding="utf-8") as handle:
                lines = handle.readlines()
        except OSError:
            continue
        for line in lines:
            fields = line.split("#", 1)[0].split()
            if len(fields) < 2:
                continue
            net, mask = parse_inet(fields[0]), parse_inet(fields[1])
            if net is None or mask is None:
                continue
            mask_value = int(_ipv4(mask))
            if value & mask_value == int(_ipv4(net)):
                return mask_value
        return None
    return None


# ------------------------------------------------------------------- kernel


def ip_binary():
    """iproute2's ``ip``, also when a hook runs with a minimal PATH."""
    path = [d for d in os.environ.get("PATH", "").split(os.pathsep) if d]
    for candidate in [os.path.join(d, "ip") for d in path] + ["/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip", "/bin/ip"]:
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    return die("ifconfig: cannot run ip(8): iproute2 is not installed")


def run_ip(args):
    """Change the kernel with ``ip`` (``subprocess`` is imported here: showing
    the interfaces, what most calls do, runs no process)."""
    import subprocess

    try:
        return subprocess.run([ip_binary(), *args], capture_output=True, text=True, check=False)
    except OSError as exc:
        return die(f"ifconfig: cannot run ip(8): {exc}")


def kernel_links():
    """The links and their IPv4 addresses, as ``ip -j addr show`` has them."""
    try:
        return rtnetlink.links()
    except OSError as exc:
        return die(f"ifconfig: could not get addresses from kernel: {exc}")


class Lif:
    """One IPv4 logical interface (``net0`` is logical interface 0)."""

    def __init__(self, name, phys, num):
        self.name = name
        self.phys = phys
        self.num = num
        self.addr = None
        self.prefix = None
        self.broadcast = None
        self.up = False
        self.kernel = False  # the address is in the kernel (i.e. UP)

    def config(self):
        return {"addr": self.addr, "prefix": self.prefix, "broadcast": self.broadcast, "up": self.up}


class Model:
    """Kernel links and addresses merged with the volatile state file."""

    def __init__(self):
        self.state_path = zone_path(*STATE_FILE)
        os.makedirs(os.path.dirname(self.state_path), exist_ok=True)
        self.lock_handle = open(self.state_path + ".lock", "a+")  # noqa: SIM115 - held until close()
        self.links, self.loopback, self.lifs = {}, None, {}

    def lock(self, exclusive):
        fcntl.flock(self.lock_handle, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)

    def close(self):
        self.lock_handle.close()

    def read_state(self):
        """``{name: config}`` from the state file: a line per interface,
        ``<name> <addr> <prefix> <broadcast> up|down`` (``-``: none)."""
        try:
            with open(self.state_path, encoding="utf-8") as handle:
                lines = handle.read().splitlines()
        except (OSError, ValueError):
            return {}
        lifs = {}
        for line in lines:
            fields = line.split()
            if len(fields) != 5 or fields[4] not in ("up", "down") or not (fields[2] == "-" or is_digits(fields[2])):
                continue  # not written by this tool: ignored
            name, addr, prefix, broadcast, up = (None if f == "-" else f for f in fields)
            lifs[name] = {"addr": addr, "prefix": None if prefix is None else int(prefix),
                          "broadcast": broadcast, "up": up == "up"}  # fmt: skip
        return lifs

    def reload(self):
        self.links = {}
        self.loopback = None
        self.lifs = {}
        for link in kernel_links():
            name = link.get("ifname", "")
            if "LOOPBACK" in link.get("flags", []):
                self.loopback = link
                continue
            if not is_linkname(name) or len(name) >= LIFNAMSIZ:
                continue
            self.links[name] = link
            phys = Lif(name, name, 0)
            self.lifs[name] = phys
            for info in link.get("addr_info", []):
                if info.get("family") != "inet":
                    continue
                label = info.get("label", name)
                if label == name:
                    lif = phys
                else:
                    number = label.removeprefix(name + ":") if label.startswith(name + ":") else ""
                    if not is_digits(number) or int(number) == 0:
                        continue
                    lif = self.lifs.setdefault(label, Lif(label, name, int(number)))
                if lif.kernel:
                    continue
                lif.kernel = lif.up = True
                lif.addr = info.get("local")
                lif.prefix = info.get("prefixlen")
                lif.broadcast = info.get("broadcast")
        state = self.read_state()
        for name, conf in state.items():
            parsed = split_ifname(name)
            if not parsed or parsed[0] not in self.links:
                continue
            lif = self.lifs.get(name)
            if lif is not None and lif.kernel:
                continue
            if lif is None:
                lif = self.lifs[name] = Lif(name, parsed[0], int(parsed[1] or 0))
            lif.addr = conf.get("addr")
            lif.prefix = conf.get("prefix")
            lif.broadcast = conf.get("broadcast")
            # Without an address the UP flag can only live in the file.
            lif.up = bool(conf.get("up")) and not lif.addr
        for lif in self.lifs.values():
            if lif.num == 0 and not lif.kernel and lif.name not in state:
                # A physical interface without any address: plumbed, 0.0.0.0.
                lif.up = "UP" in self.links[lif.name].get("flags", [])

    def save(self):
        lifs = {}
        for name, lif in self.lifs.items():
            # Logical interfaces are all recorded (an UP one too, so that it
            # stays plumbed if its kernel address vanishes); the physical
            # interface only when it was brought down with an address.
            if lif.num == 0 and (lif.kernel or lif.addr is None):
                continue
            lifs[name] = lif.config()
        tmp = f"{self.state_path}.{os.getpid()}.tmp"
        with open(tmp, "w", encoding="utf-8") as handle:
            for name, conf in sorted(lifs.items()):
                values = (conf["addr"], conf["prefix"], conf["broadcast"])
                handle.write(" ".join([name, *("-" if v is None else str(v) for v in values)]))
                handle.write(" up\n" if conf["up"] else " down\n")
        os.replace(tmp, self.state_path)

    # -- kernel changes

    def kernel_add(self, lif, context):
        def fail(reason):
            if context == CREATE_FAILED:  # ifconfig.c "createfailed:" label
                die(f"ifconfig: {CREATE_FAILED}: {reason}")
            die(f"ifconfig: {context}: {lif.name}: {reason}")

        for link in kernel_links():
            for info in link.get("addr_info", []):
                if info.get("family") == "inet" and info.get("local") == lif.addr:
                    fail("Address already in use")
        args = ["addr", "add", f"{lif.addr}/{lif.prefix}"]
        if lif.broadcast and lif.prefix <= 30:
            args += ["brd", lif.broadcast]
        args += ["dev", lif.phys, "label", lif.name]
        proc = run_ip(args)
        if proc.returncode != 0:
            fail(proc.stderr.strip() or "ip addr add failed")
        lif.kernel = True

    def kernel_del(self, lif, context):
        proc = run_ip(["addr", "del", f"{lif.addr}/{lif.prefix}", "dev", lif.phys])
        if proc.returncode != 0 and "Cannot assign" not in proc.stderr:
            die(f"ifconfig: {context}: {lif.name}: {proc.stderr.strip() or 'ip addr del failed'}")
        lif.kernel = False

    def reconfigure(self, lif, addr, prefix, broadcast, context):
        """Change a logical interface's address; an UP one stays UP."""
        was_up = lif.kernel
        if was_up:
            self.kernel_del(lif, context)
        lif.addr, lif.prefix, lif.broadcast = addr, prefix, broadcast
        if was_up:
            if addr and addr != "0.0.0.0":
                self.kernel_add(lif, context)
            else:
                lif.up = True

    def free_lif_number(self, phys):
        used = {lif.num for lif in self.lifs.values() if lif.phys == phys}
        for num in range(1, MAX_LIF + 1):
            if num not in used:
                return num
        return None


# ------------------------------------------------------------------ display


def format_flags(flags):
    names = [name for value, name in FLAG_NAMES if flags & value]
    return f"flags={flags:x}<{','.join(names)}>"


def format_mac(mac):
    return ":".join(f"{int(octet, 16):x}" for octet in mac.split(":"))


def lif_flags(model, lif):
    link = model.links[lif.phys]
    flags = IFF_BROADCAST | IFF_MULTICAST | IFF_IPV4
    if lif.up:
        flags |= IFF_UP
    if "LOWER_UP" in link.get("flags", []) or link.get("operstate") == "UP":
        flags |= IFF_RUNNING
    if lif.num == 0:
        flags |= IFF_L3PROTECT
    return flags


def inet_line(addr, prefix, broadcast, flags):
    line = f"\tinet {addr or '0.0.0.0'} netmask {mask_of(prefix or 0):x} "
    if flags & IFF_BROADCAST and broadcast and broadcast != "0.0.0.0":
        line += f"broadcast {broadcast}"
    return line


def show_loopback(model, up_filter):
    link = model.loopback
    if link is None:
        return []
    flags = IFF_LOOPBACK | IFF_RUNNING | IFF_MULTICAST | IFF_IPV4 | IFF_VIRTUAL
    if "UP" in link.get("flags", []):
        flags |= IFF_UP
    if up_filter is not None and bool(flags & IFF_UP) != up_filter:
        return []
    addr, prefix = "0.0.0.0", 0
    for info in link.get("addr_info", []):
        if info.get("family") == "inet":
            addr, prefix = info.get("local"), info.get("prefixlen")
            break
    return [
        f"lo0: {format_flags(flags)} mtu {LOOPBACK_MTU} index {link.get('ifindex', 1)}",
        inet_line(addr, prefix, None, flags),
    ]


def show_lif(model, lif, up_filter=None):
    link = model.links[lif.phys]
    flags = lif_flags(model, lif)
    if up_filter is not None and bool(flags & IFF_UP) != up_filter:
        return []
    lines = [
        f"{lif.name}: {format_flags(flags)} mtu {link.get('mtu', 1500)} index {link.get('ifindex', 0)}",
        inet_line(lif.addr, lif.prefix, lif.broadcast, flags),
    ]
    if lif.num == 0 and link.get("address"):
        lines.append(f"\tether {format_mac(link['address'])} ")
    return lines


def show_all(model, up_filter):
    lines = show_loopback(model, up_filter)
    for phys in sorted(model.links, key=lambda n: model.links[n].get("ifindex", 0)):
        for lif in sorted((x for x in model.lifs.values() if x.phys == phys), key=lambda x: x.num):
            lines += show_lif(model, lif, up_filter)
    return lines


# ----------------------------------------------------------------- commands


class Command:
    """One ``ifconfig <name> <args...>`` run, in ifconfig.c's order."""

    def __init__(self, model, name, args):
        self.model = model
        self.name = name
        self.origname = name
        self.args = args
        self.g_netmask = None  # "+" or an int mask, from the netmask pre-scan
        self.pending = None  # (addr, prefix) waiting to be created
        self.setaddr_done = False

    def lif(self):
        return self.model.lifs.get(self.name)

    def need_lif(self, context):
        lif = self.lif()
        if lif is None:
            die(f"ifconfig: {context}: {self.name}: no such interface")
        return lif

    def run(self):
        args = list(self.args)
        for i, arg in enumerate(args):  # the netmask "hack" of ifconfig()
            if arg == "netmask" and i + 1 < len(args):
                value = args[i + 1]
                if value == "+":
                    self.g_netmask = "+"
                else:
                    addr, _ = in_getaddr(value, allow_prefix=False)
                    self.g_netmask = int(_ipv4(addr))
        while args:
            word = args.pop(0)
            handler = getattr(self, "cmd_" + word.replace("-", "_"), None) if word.isidentifier() else None
            if word in UNSUPPORTED_NEXTARG or word in UNSUPPORTED_FLAGS:
                self.flush_pending()
                die(f"ifconfig: {word}: not supported by the SmartOS simulation")
            if handler is None:
                self.address(word)
                continue
            self.flush_pending()
            if word in ("netmask", "broadcast", "addif", "removeif", "set"):
                if not args:
                    die(f"ifconfig: no argument for {word}")
                handler(args.pop(0))
            else:
                handler()
        self.flush_pending()

    # -- addresses

    def mask_for(self, addr, prefix):
        """set_mask_lifreq(): prefix, else the netmask argument, else classful."""
        if prefix is not None:
            return prefix
        if self.g_netmask == "+":
            found = netmasks_lookup(addr)
            if found is not None:
                plen = prefix_of(found)
                if plen is not None:
                    return plen
            return classful_prefix(addr)
        if self.g_netmask is not None:
            plen = prefix_of(self.g_netmask)
            if plen is None:
                die("ifconfig: could not set address: Invalid argument provided")
            return plen
        return classful_prefix(addr)

    def address(self, word):
        if self.pending is not None:
            in_getaddr(word, allow_prefix=False)
            die("ifconfig: could not set destination address: Operation not supported")
        if self.setaddr_done:
            die("ifconfig: cannot configure more than two addresses in one command")
        self.cmd_set(word)

    def cmd_set(self, word):
        if self.lif() is None:
            # ifconfig_use_libipadm(): SIOCGLIFGROUPNAME fails first.
            die(f"ifconfig: error: {self.name}: no such interface")
        addr, prefix = in_getaddr(word, allow_prefix=True)
        self.pending = (addr, self.mask_for(addr, prefix))

    def flush_pending(self):
        if self.pending is None:
            return
        addr, prefix = self.pending
        self.pending = None
        lif = self.need_lif("error")
        self.model.reconfigure(lif, addr, prefix, broadcast_of(addr, prefix), CREATE_FAILED)
        self.setaddr_done = True

    # -- keywords

    def cmd_up(self):
        lif = self.need_lif("setifflags: SIOCGLIFFLAGS")
        if lif.kernel:
            return
        if lif.addr and lif.addr != "0.0.0.0":
            self.model.kernel_add(lif, "setifflags: SIOCSLIFFLAGS")
        if lif.num == 0 and "UP" not in self.model.links[lif.phys].get("flags", []):
            run_ip(["link", "set", "dev", lif.phys, "up"])
        lif.up = True

    def cmd_down(self):
        lif = self.need_lif("setifflags: SIOCGLIFFLAGS")
        if lif.kernel:
            self.model.kernel_del(lif, "setifflags: SIOCSLIFFLAGS")
        lif.up = False

    def cmd_netmask(self, value):
        lif = self.need_lif("SIOCSLIFNETMASK")
        if value == "+":
            if not lif.addr or lif.addr == "0.0.0.0":
                return
            mask = netmasks_lookup(lif.addr)
            if mask is None:
                return
            print(f"Setting netmask of {self.name} to {_ipv4(mask)}")
        else:
            addr, _ = in_getaddr(value, allow_prefix=False)
            mask = int(_ipv4(addr))
        prefix = prefix_of(mask)
        if prefix is None:
            die(f"ifconfig: SIOCSLIFNETMASK: {self.name}: Invalid argument")
        if prefix == lif.prefix:
            return
        self.model.reconfigure(lif, lif.addr, prefix, broadcast_of(lif.addr, prefix), "SIOCSLIFNETMASK")

    def cmd_broadcast(self, value):
        if value == "+":
            lif = self.need_lif("SIOCGLIFADDR")
            if not lif.addr or lif.addr == "0.0.0.0":
                return
            brd = broadcast_of(lif.addr, lif.prefix)
        else:
            brd, _ = in_getaddr(value, allow_prefix=False)
            lif = self.need_lif("SIOCSLIFBRDADDR")
        if brd != lif.broadcast:
            self.model.reconfigure(lif, lif.addr, lif.prefix, brd, "SIOCSLIFBRDADDR")

    def cmd_plumb(self):
        parsed = split_ifname(self.name)
        if self.lif() is not None:
            err(f"ifconfig: cannot plumb {self.name}: Interface already exists")
            return
        if not parsed or parsed[0] not in self.model.links:
            reason = "No such interface" if parsed and parsed[1] else "Could not open DLPI link"
            die(f"ifconfig: cannot plumb {self.name}: {reason}")
        num = int(parsed[1])
        if num > MAX_LIF:
            die(f"ifconfig: cannot plumb {self.name}: Value is outside the allowed range")
        self.model.lifs[self.name] = Lif(self.name, parsed[0], num)

    def cmd_unplumb(self):
        lif = self.lif()
        if lif is None:
            die(f"ifconfig: cannot unplumb {self.name}: No such interface")
        if lif.num == 0:
            die(f"ifconfig: cannot unplumb {self.name}: Operation not supported")
        if lif.kernel:
            self.model.kernel_del(lif, f"cannot unplumb {self.name}")
        del self.model.lifs[self.name]

    def cmd_addif(self, value):
        self.name = self.origname
        if ":" in self.name:
            die(f"ifconfig: addif: bad physical interface name {self.name}")
        self.setaddr_done = False
        addr, prefix = in_getaddr(value, allow_prefix=True)
        if self.name not in self.model.links:
            die(f"ifconfig: addif: SIOCLIFADDIF: {self.name}: no such interface")
        num = self.model.free_lif_number(self.name)
        if num is None:
            die(f"ifconfig: addif: SIOCLIFADDIF: {self.name}: logical interface id is outside allowed range")
        lif = Lif(f"{self.name}:{num}", self.name, num)
        self.model.lifs[lif.name] = lif
        print(f"Created new logical interface {lif.name}")
        sys.stdout.flush()
        self.name = lif.name
        self.pending = (addr, self.mask_for(addr, prefix))

    def cmd_removeif(self, value):
        if ":" in self.name:
            die(f"ifconfig: removeif: bad physical interface name {self.name}")
        addr, _ = in_getaddr(value, allow_prefix=False)
        if self.name not in self.model.links:
            die(f"ifconfig: removeif: SIOCLIFREMOVEIF: {self.name}: no such interface")
        found = [x for x in self.model.lifs.values() if x.phys == self.name and x.addr == addr]
        if not found:
            die(f"ifconfig: removeif: SIOCLIFREMOVEIF: {self.name}: no such interface")
        lif = min(found, key=lambda x: x.num)
        if lif.num == 0:
            die(f"ifconfig: removeif: cannot remove interface: {self.name}")
        if lif.kernel:
            self.model.kernel_del(lif, "removeif: SIOCLIFREMOVEIF")
        del self.model.lifs[lif.name]


# --------------------------------------------------------------------- main


def display(model, name, up_filter=None):
    if name == "lo0":
        lines = show_loopback(model, up_filter)
    else:
        lif = model.lifs.get(name)
        if lif is None:
            die(f"ifconfig: status: SIOCGLIFFLAGS: {name}: no such interface")
        lines = show_lif(model, lif)
    for line in lines:
        print(line)


def options(name):
    """Parse ``-a[4|6|D][u|d][Z][v]``; returns (up_filter, only_v6)."""
    up_filter, only_v6, all_ = None, False, False
    for letter in name[1:]:
        if letter not in "audhDXZ46v":
            err(f"ifconfig: illegal option -- {letter}")
            err(USAGE.rstrip("\n"))
            raise Exit(1)
        if letter == "h":
            err(USAGE.rstrip("\n"))
            raise Exit(1)
        all_ = all_ or letter == "a"
        if letter == "u":
            up_filter = True
        elif letter == "d":
            up_filter = False
        elif letter == "6":
            only_v6 = True
    if not all_:
        die(f"ifconfig: {name}: no such interface")
    return up_filter, only_v6


def run(argv):
    name = argv[0] if argv else "-a"
    args = list(argv[1:])
    if len(name) > LIFNAMSIZ - 1:
        die(f"{name}: interface name too long")
    if args and args[0] in ("inet", "inet6"):
        if args.pop(0) == "inet6":
            die("ifconfig: inet6: IPv6 is not supported by the SmartOS simulation")
    parsed = split_ifname(name)
    if parsed and parsed[1] is not None and int(parsed[1]) == 0:
        name = parsed[0]  # net0:0 is net0
    model = Model()
    try:
        if name.startswith("-"):
            up_filter, only_v6 = options(name)
            if args and args != ["plumb"]:
                die(f"ifconfig: {name} {args[0]}: not supported by the SmartOS simulation")
            model.lock(exclusive=False)
            model.reload()
            if not args and not only_v6:
                for line in show_all(model, up_filter):
                    print(line)
            return 0
        if not args:
            model.lock(exclusive=False)
            model.reload()
            display(model, name)
            return 0
        model.lock(exclusive=True)
        model.reload()
        command = Command(model, name, args)
        try:
            command.run()
        finally:
            model.save()
        return 0
    finally:
        model.close()


def main(argv):
    try:
        return run(argv)
    except Exit as stop:
        return stop.code
    except ToolError as exc:
        err(exc.message)
        return exc.code
