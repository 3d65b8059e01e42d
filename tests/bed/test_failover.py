"""A real UCARP failover between two zones on two simulated hypervisors.

Everything an operator would do by hand, through the SmartOS commands only:
vmadm create, zlogin pkgin install ucarp, hooks that use the zone's ifconfig,
ucarp started in each zone; then the master zone is stopped with vmadm.
"""

import pytest
from support import recipe_gz, recipe_zone, wait_for

from smartos_sim.recipe import holds_vip, start_by_hand

pytestmark = pytest.mark.root

VIP = "192.0.2.100"
VHID = 42


@pytest.fixture(scope="module")
def cluster(bed):
    client = bed.host("fo-client", "192.0.2.200/24")
    nodes = {}
    for gz_name, alias, ip in (("gz1", "zoneA", "192.0.2.11"), ("gz2", "zoneB", "192.0.2.12")):
        gz = recipe_gz(bed, gz_name)
        payload = recipe_zone(alias, ip)
        # Least privilege for a floating VIP: allowed_ips, not allow_ip_spoofing.
        # UCARP sends its adverts from the CARP MAC 00:00:5e:00:00:<vhid>, so
        # the NIC must allow MAC spoofing or the peers never hear each other.
        payload["nics"][0].update(allowed_ips=[VIP], allow_mac_spoofing=True)
        uuid = gz.create(payload)
        start_by_hand(gz, uuid, ip, VIP, VHID, "s3cret")
        nodes[alias] = (gz, uuid)
    return nodes, client


def holders(nodes):
    return sorted(
        alias for alias, (gz, uuid) in nodes.items() if gz.get(uuid)["state"] == "running" and holds_vip(gz, uuid, VIP)
    )


def client_reaches_vip(bed, client):
    return bed.in_host(client, "ping", "-c", "1", "-W", "1", VIP).returncode == 0


def vip_mac_seen_by(bed, client):
    out = bed.in_host(client, "ip", "neigh", "show", VIP).stdout.split()
    return out[out.index("lladdr") + 1] if "lladdr" in out else None


def test_exactly_one_zone_holds_the_vip(bed, cluster):
    nodes, client = cluster
    wait_for(lambda: len(holders(nodes)) == 1, timeout=30, what="one master")
    wait_for(lambda: client_reaches_vip(bed, client), timeout=30, what="the VIP to answer the client")
    assert len(holders(nodes)) == 1  # still one, once the election settled


def test_stopping_the_master_zone_moves_the_vip(bed, cluster):
    nodes, client = cluster
    (master,) = wait_for(lambda: holders(nodes) if len(holders(nodes)) == 1 else None, what="one master")
    (backup,) = set(nodes) - {master}
    master_gz, master_uuid = nodes[master]
    backup_gz, backup_uuid = nodes[backup]
    master_gz.run("vmadm", "stop", "-F", master_uuid, check=True)  # the master zone dies
    wait_for(lambda: holders(nodes) == [backup], timeout=30, what=f"{backup} to take the VIP")
    backup_mac = backup_gz.get(backup_uuid)["nics"][0]["mac"]
    wait_for(lambda: client_reaches_vip(bed, client), timeout=30, what="the VIP to answer again")
    assert vip_mac_seen_by(bed, client) == backup_mac
    # The stopped zone comes back as a plain zone: no VIP until ucarp runs again.
    master_gz.run("vmadm", "start", master_uuid, check=True)
    assert not holds_vip(master_gz, master_uuid, VIP)
    assert holders(nodes) == [backup]
