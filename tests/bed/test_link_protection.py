"""Link protection as SmartOS enforces it in the global zone.

A zone NIC may send only from its own addresses plus ``allowed_ips``: a VIP
configured in the zone is unreachable until vmadm allows it, and again after
vmadm takes it away.
"""

import json

import pytest
from support import recipe_gz, recipe_zone, wait_for

pytestmark = pytest.mark.root

VIP = "192.0.2.110"


@pytest.fixture(scope="module")
def setup(bed):
    client = bed.host("lp-client", "192.0.2.201/24")
    gz = recipe_gz(bed, "gz-lp")
    uuid = gz.create(recipe_zone("guarded", "192.0.2.51"))
    for step in ("net0:1 plumb", f"net0:1 {VIP} netmask 255.255.255.0 up"):
        proc = gz.zlogin(uuid, f"/usr/sbin/ifconfig {step}")
        assert proc.returncode == 0, proc.stderr
    return gz, uuid, client


def reachable(bed, client, address, count=1):
    bed.in_host(client, "ip", "neigh", "flush", "all")
    return bed.in_host(client, "ping", "-c", str(count), "-W", "1", address).returncode == 0


def set_allowed(gz, uuid, allowed):
    mac = gz.get(uuid)["nics"][0]["mac"]
    payload = {"update_nics": [{"mac": mac, "allowed_ips": allowed}]}
    gz.run("vmadm", "update", uuid, stdin=json.dumps(payload), check=True)


def test_own_address_is_reachable(bed, setup):
    _gz, _uuid, client = setup
    wait_for(lambda: reachable(bed, client, "192.0.2.51"), what="the zone's own address")


def test_vip_not_allowed_is_unreachable(bed, setup):
    _gz, _uuid, client = setup
    assert not reachable(bed, client, VIP, count=3)


def test_allowed_ips_update_on_a_running_zone(bed, setup):
    gz, uuid, client = setup
    set_allowed(gz, uuid, [VIP])
    wait_for(lambda: reachable(bed, client, VIP), what="the VIP once allowed")
    set_allowed(gz, uuid, [])
    assert not reachable(bed, client, VIP, count=3)


def test_ip_spoofing_lifts_the_check(bed, setup):
    gz, uuid, client = setup
    mac = gz.get(uuid)["nics"][0]["mac"]
    payload = {"update_nics": [{"mac": mac, "allow_ip_spoofing": True}]}
    gz.run("vmadm", "update", uuid, stdin=json.dumps(payload), check=True)
    wait_for(lambda: reachable(bed, client, VIP), what="the VIP with allow_ip_spoofing")
