"""The kernel's links and IPv4 addresses, read over rtnetlink.

What ``ip -j addr show`` prints, in its shape (``ifname``, ``ifindex``,
``flags``, ``mtu``, ``operstate``, ``address`` and ``addr_info`` entries with
``family``, ``local``, ``prefixlen``, ``broadcast`` and ``label``), read with
one netlink socket instead of a process: ``ifconfig -a`` runs in every zone
at every ``ucarp.status``. Changes still go through ``ip`` (``ifconfig``).

Message layouts: linux/netlink.h, linux/rtnetlink.h, linux/if_link.h and
linux/if_addr.h.
"""

# The C module alone: ``socket``'s wrapper builds enums of every constant at
# import, which costs more than the whole dump.
import _socket as socket
import os
import struct

NETLINK_ROUTE = 0
NLM_F_REQUEST, NLM_F_DUMP = 0x1, 0x300
NLMSG_ERROR, NLMSG_DONE = 2, 3
RTM_NEWLINK, RTM_GETLINK, RTM_NEWADDR, RTM_GETADDR = 16, 18, 20, 22
IFLA_ADDRESS, IFLA_IFNAME, IFLA_MTU, IFLA_OPERSTATE = 1, 3, 4, 16
IFA_LOCAL, IFA_LABEL, IFA_BROADCAST = 2, 3, 4

NLMSGHDR = struct.Struct("=IHHII")  # len, type, flags, seq, pid
IFINFOMSG = struct.Struct("=BxHiII")  # family, type, index, flags, change
IFADDRMSG = struct.Struct("=BBBBI")  # family, prefixlen, flags, scope, index
RTATTR = struct.Struct("=HH")  # len, type

# net/if.h flag bits, named as ip(8) prints them (those the tools read).
LINK_FLAGS = ((0x1, "UP"), (0x2, "BROADCAST"), (0x8, "LOOPBACK"), (0x1000, "MULTICAST"), (0x10000, "LOWER_UP"))
OPERSTATES = ("UNKNOWN", "NOTPRESENT", "DOWN", "LOWERLAYERDOWN", "TESTING", "DORMANT", "UP")


class NetlinkError(OSError):
    """The kernel refused a dump request (its errno)."""


def _align(n):
    return (n + 3) & ~3


def _attrs(data, offset):
    """``{type: payload}`` of the rtattrs from ``offset`` to the end."""
    found = {}
    while offset + RTATTR.size <= len(data):
        length, kind = RTATTR.unpack_from(data, offset)
        if length < RTATTR.size:
            break
        found[kind & 0x3FFF] = data[offset + RTATTR.size : offset + length]
        offset += _align(length)
    return found


def _dump(sock, seq, kind, header):
    """Every message the kernel sends for one dump request: (type, body)."""
    body = header
    sock.send(NLMSGHDR.pack(NLMSGHDR.size + len(body), kind, NLM_F_REQUEST | NLM_F_DUMP, seq, 0) + body)
    while True:
        data = sock.recv(1 << 16)
        if not data:
            raise NetlinkError(0, "the kernel closed the dump before its end")
        offset = 0
        while offset + NLMSGHDR.size <= len(data):
            length, mtype, _flags, mseq, _pid = NLMSGHDR.unpack_from(data, offset)
            if length < NLMSGHDR.size:
                return
            payload = data[offset + NLMSGHDR.size : offset + length]
            offset += _align(length)
            if mseq != seq:
                continue
            if mtype == NLMSG_DONE:
                return
            if mtype == NLMSG_ERROR:
                (errno,) = struct.unpack_from("=i", payload)
                if errno:
                    raise NetlinkError(-errno, os.strerror(-errno))
                continue
            yield mtype, payload


def _text(raw):
    return raw.split(b"\0", 1)[0].decode("utf-8", "replace")


def links():
    """The links with their IPv4 addresses, in ``ip -j addr show``'s shape."""
    sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_ROUTE)
    try:
        sock.bind((0, 0))
        found = {}
        for mtype, body in _dump(sock, 1, RTM_GETLINK, IFINFOMSG.pack(socket.AF_UNSPEC, 0, 0, 0, 0)):
            if mtype != RTM_NEWLINK:
                continue
            _family, _type, index, flags, _change = IFINFOMSG.unpack_from(body)
            attrs = _attrs(body, IFINFOMSG.size)
            link = {"ifindex": index, "ifname": _text(attrs.get(IFLA_IFNAME, b"")),
                    "flags": [name for bit, name in LINK_FLAGS if flags & bit]}  # fmt: skip
            if IFLA_MTU in attrs:
                (link["mtu"],) = struct.unpack("=I", attrs[IFLA_MTU][:4])
            if IFLA_OPERSTATE in attrs:
                state = attrs[IFLA_OPERSTATE][0]
                link["operstate"] = OPERSTATES[state] if state < len(OPERSTATES) else "UNKNOWN"
            if attrs.get(IFLA_ADDRESS):
                link["address"] = ":".join(f"{octet:02x}" for octet in attrs[IFLA_ADDRESS])
            link["addr_info"] = []
            found[index] = link
        for mtype, body in _dump(sock, 2, RTM_GETADDR, IFADDRMSG.pack(socket.AF_INET, 0, 0, 0, 0)):
            family, prefixlen, _flags, _scope, index = IFADDRMSG.unpack_from(body)
            if mtype != RTM_NEWADDR or family != socket.AF_INET or index not in found:
                continue
            attrs = _attrs(body, IFADDRMSG.size)
            info = {"family": "inet", "prefixlen": prefixlen}
            if IFA_LOCAL in attrs:
                info["local"] = socket.inet_ntoa(attrs[IFA_LOCAL][:4])
            if IFA_BROADCAST in attrs:
                info["broadcast"] = socket.inet_ntoa(attrs[IFA_BROADCAST][:4])
            if IFA_LABEL in attrs:
                info["label"] = _text(attrs[IFA_LABEL])
            found[index]["addr_info"].append(info)
    finally:
        sock.close()
    return [found[index] for index in sorted(found)]
