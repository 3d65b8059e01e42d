"""The original article's manual recipe, done by hand on the test bed.

What an operator types without the formula: install ucarp with pkgin, write
up/down hooks that use the zone's ifconfig, start ucarp through zlogin.  The
test bed's own failover test and demo use it; the formula replaces it.
"""

import shlex

UP_HOOK = """#!/bin/sh
# ucarp up hook: $1 interface, $2 VIP. The VIP gets a logical interface.
/usr/sbin/ifconfig "$1:{vhid}" plumb
/usr/sbin/ifconfig "$1:{vhid}" "$2" netmask {netmask} up
"""
DOWN_HOOK = """#!/bin/sh
# ucarp down hook: remove the VIP's logical interface.
/usr/sbin/ifconfig "$1:{vhid}" down
/usr/sbin/ifconfig "$1:{vhid}" unplumb
"""


def _zlogin_ok(gz, uuid, command, stdin=None):
    proc = gz.zlogin(uuid, command, stdin=stdin)
    if proc.returncode != 0:
        raise RuntimeError(f"zlogin {uuid} {command!r} failed: {proc.stderr.strip()}")
    return proc


def start_by_hand(gz, uuid, srcip, vip, vhid, password, *, netmask="255.255.255.0"):
    """Install ucarp in a zone, write its hooks and passfile, start it."""
    _zlogin_ok(gz, uuid, "/opt/local/bin/pkgin -y install ucarp")
    hooks = {"vip-up.sh": UP_HOOK, "vip-down.sh": DOWN_HOOK}
    for name, template in hooks.items():
        path = f"/opt/local/etc/{name}"
        body = template.format(vhid=vhid, netmask=netmask)
        _zlogin_ok(gz, uuid, f"cat > {path} && chmod 0755 {path}", stdin=body)
    _zlogin_ok(gz, uuid, "umask 077; cat > /opt/local/etc/ucarp.pass", stdin=password)
    args = [
        "/opt/local/sbin/ucarp", "-B", "--interface=net0", f"--srcip={srcip}", f"--vhid={vhid}",
        "--passfile=/opt/local/etc/ucarp.pass", f"--addr={vip}", "--upscript=/opt/local/etc/vip-up.sh",
        "--downscript=/opt/local/etc/vip-down.sh", "-z",
    ]  # fmt: skip
    _zlogin_ok(gz, uuid, " ".join(shlex.quote(a) for a in args) + " </dev/null >/dev/null 2>&1")


def holds_vip(gz, uuid, vip):
    """Whether the zone has ``vip`` up, as its ``ifconfig -a`` shows."""
    proc = gz.zlogin(uuid, "/usr/sbin/ifconfig -a")
    return proc.returncode == 0 and f"inet {vip} " in proc.stdout
