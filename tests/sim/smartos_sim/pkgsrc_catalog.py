"""The simulated pkgsrc repository seen by ``pkgin`` in a SmartOS zone.

Each package lists its files relative to the zone prefix ``/opt/local``.  A
file is either ``text`` (written as given) or ``copy`` (copied from the host;
``optional`` copies are skipped when the host lacks them).  ``ucarp`` follows
pkgsrc ``net/ucarp``: the daemon, its docs, the BSD example scripts and the
message catalogues - no SMF manifest, no configuration, no illumos hooks.
The daemon is Debian's ``/usr/sbin/ucarp`` (1.5.2), the only real binary here.
"""

REPO_URL = "https://pkgsrc.smartos.org/packages/SmartOS/2024Q4/x86_64/All"
PREFIX = "/opt/local"
HOST_UCARP = "/usr/sbin/ucarp"

UCARP_VIP_UP = '#! /bin/sh\nexec 2> /dev/null\n\n/sbin/ifconfig "$1" alias "$2" netmask 255.255.255.255\n'
UCARP_VIP_DOWN = '#! /bin/sh\nexec 2> /dev/null\n\n/sbin/ifconfig "$1" -alias "$2"\n'

UCARP_DESCR = """\
UCARP allows a pair of hosts to share common virtual IP addresses in order to
provide automatic failover. It is a portable userland implementation of the
secure and patent-free Common Address Redundancy Protocol (CARP, OpenBSD's
alternative to the VRRP).

Strong points of the CARP protocol are : very low overhead, cryptographically
signed messages, interoperability between different operating systems and no
need for any dedicated extra network link between redundant hosts.
"""

PCAP_H = """\
/*
 * pcap.h - libpcap 1.10.4 compatibility header (simulated pkgsrc package).
 */
#include <pcap/pcap.h>
"""

PACKAGES = {
    "ucarp": {
        "version": "1.5.2",
        "comment": "Common Address Redundancy Protocol (CARP) for Unix",
        "descr": UCARP_DESCR,
        "category": "net",
        "pkgpath": "net/ucarp",
        "homepage": "https://github.com/jedisct1/UCarp",
        "license": "isc",
        "depends": ["libpcap>=0.6.0"],
        "file_size": 41532,
        "files": [
            {"path": "sbin/ucarp", "copy": HOST_UCARP, "mode": 0o755},
            {"path": "share/doc/ucarp/AUTHORS", "text": "Frank DENIS <j at pureftpd dot org>\n"},
            {
                "path": "share/doc/ucarp/COPYING",
                "text": "UCARP is covered by the ISC license and the OpenBSD CARP license.\n",
            },
            {"path": "share/doc/ucarp/NEWS", "text": "* Version 1.5.2:\n  - Bug fixes.\n"},
            {"path": "share/doc/ucarp/README", "text": UCARP_DESCR},
            {"path": "share/examples/ucarp/vip-down.sh", "text": UCARP_VIP_DOWN, "mode": 0o755},
            {"path": "share/examples/ucarp/vip-up.sh", "text": UCARP_VIP_UP, "mode": 0o755},
            {
                "path": "share/locale/en@boldquot/LC_MESSAGES/ucarp.mo",
                "copy": "/usr/share/locale/en@boldquot/LC_MESSAGES/ucarp.mo",
                "optional": True,
            },
            {
                "path": "share/locale/en@quot/LC_MESSAGES/ucarp.mo",
                "copy": "/usr/share/locale/en@quot/LC_MESSAGES/ucarp.mo",
                "optional": True,
            },
        ],
    },
    "libpcap": {
        "version": "1.10.4",
        "comment": "System-independent interface for user-level packet capture",
        "descr": "Libpcap provides a portable framework for low-level network monitoring.\n",
        "category": "net",
        "pkgpath": "net/libpcap",
        "homepage": "https://www.tcpdump.org/",
        "license": "modified-bsd",
        "depends": [],
        "file_size": 212480,
        "files": [
            {"path": "include/pcap.h", "text": PCAP_H},
            {"path": "include/pcap/pcap.h", "text": "/* libpcap 1.10.4 API (simulated) */\n"},
            {"path": "lib/pkgconfig/libpcap.pc", "text": "Name: libpcap\nVersion: 1.10.4\n"},
            {"path": "man/man3/pcap.3", "text": '.TH PCAP 3PCAP "simulated"\n'},
        ],
    },
    "mozilla-rootcerts": {
        "version": "1.1.20241118",
        "comment": "Root CA certificates from the Mozilla Project",
        "descr": "This package contains the root CA certificates from the Mozilla Project.\n",
        "category": "security",
        "pkgpath": "security/mozilla-rootcerts",
        "homepage": "https://wiki.mozilla.org/CA",
        "license": "mpl-2.0",
        "depends": [],
        "file_size": 137216,
        "files": [
            {
                "path": "sbin/mozilla-rootcerts",
                "text": '#!/bin/sh\necho "usage: mozilla-rootcerts [-f] extract|rehash|install" >&2\nexit 1\n',
                "mode": 0o755,
            },
            {
                "path": "share/mozilla-rootcerts/certdata.txt",
                "text": "# Simulated certdata.txt: no certificates.\n",
            },
        ],
    },
    "bash-completion": {
        "version": "2.14.0",
        "comment": "Programmable completion specifications for bash",
        "descr": "bash-completion is a collection of shell functions for bash completion.\n",
        "category": "shells",
        "pkgpath": "shells/bash-completion",
        "homepage": "https://github.com/scop/bash-completion",
        "license": "gnu-gpl-v2",
        "depends": [],
        "file_size": 301056,
        "files": [
            {
                "path": "share/bash-completion/bash_completion",
                "text": "# bash-completion 2.14.0 (simulated): no completions.\n",
            },
        ],
    },
}
