"""Unit tests of the cluster model (_utils/ucarp_model.py): validation and rendering."""

import copy
import os
import subprocess
import sys

import pytest
import yaml
from support import REPO, load_salt_module

model_util = load_salt_module("_utils", "ucarp_model")

GOOD = {
    "web": {
        "vip": "192.0.2.100",
        "vhid": 101,
        "password": "s3cret",
        "nodes": {"web-a": {"host": "gz1", "ip": "192.0.2.11"}, "web-b": {"host": "gz2", "ip": "192.0.2.12"}},
    },
    "db": {
        "vip": "192.0.2.110",
        "vhid": 102,
        "password": "an0ther",
        "nodes": {"db-a": {"host": "gz1", "ip": "192.0.2.21"}, "db-b": {"host": "gz2", "ip": "192.0.2.22"}},
    },
}


def problems_of(change):
    raw = copy.deepcopy(GOOD)
    change(raw)
    return model_util.normalise(raw)[1]


def test_good_pillar_normalises_with_defaults():
    model, problems = model_util.normalise(GOOD)
    assert problems == []
    web = model["web"]
    assert (web["vip"], web["prefixlen"], web["netmask"], web["vhid"]) == ("192.0.2.100", 24, "255.255.255.0", 101)
    assert (web["advbase"], web["advskew"], web["deadratio"], web["preempt"]) == (1, 1, 3, False)
    assert web["fmri"] == "svc:/network/ucarp:web"
    assert web["segment"] == "admin"
    assert "password" not in web  # it stays in pillar
    assert web["password_key"] == "ucarp:clusters:web:password"


def test_pillar_example_is_valid():
    with open(os.path.join(REPO, "pillar.example")) as fh:
        pillar = yaml.safe_load(fh)
    model, problems = model_util.normalise(pillar["ucarp"]["clusters"], pillar["ucarp"]["defaults"])
    assert problems == []
    assert set(model) == {"web", "db"}
    assert model["web"]["nodes"]["web-b"]["advskew"] == 20


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda p: p["web"].update(vhid=0), "ucarp:clusters:web:vhid: must be an integer from 1 to 255 (got 0)"),
        (lambda p: p["web"].update(vhid=256), "ucarp:clusters:web:vhid: must be an integer from 1 to 255 (got 256)"),
        (lambda p: p["web"].pop("vhid"), "ucarp:clusters:web:vhid: missing: the virtual host ID"),
        (
            lambda p: p["db"].update(vhid=101),
            "ucarp:clusters:web:vhid: 101 is already used by cluster db on segment admin",
        ),
        (lambda p: p["web"].update(vip="192.0.2.300"), "ucarp:clusters:web:vip: '192.0.2.300' is not an IPv4 address"),
        (lambda p: p["web"].pop("vip"), "ucarp:clusters:web:vip: missing"),
        (
            lambda p: p["web"]["nodes"]["web-a"].update(ip="192.0.2.100"),
            "ucarp:clusters:web:nodes:web-a:ip: 192.0.2.100 is the cluster's VIP",
        ),
        (
            lambda p: p["web"]["nodes"]["web-b"].update(ip="198.51.100.12"),
            "ucarp:clusters:web:nodes:web-b:ip: 198.51.100.12 is outside the VIP's subnet 192.0.2.0/24",
        ),
        (
            lambda p: p["web"]["nodes"]["web-b"].update(ip="nope"),
            "ucarp:clusters:web:nodes:web-b:ip: 'nope' is not an IPv4 address",
        ),
        (lambda p: p["web"].update(password=""), "ucarp:clusters:web:password: missing or empty"),
        (
            lambda p: p["web"].update(password="x" * 20),
            "ucarp:clusters:web:password: is 20 bytes long; UCARP takes at most 19",
        ),
        (
            lambda p: p["web"].update(password="ééééééééééé"),
            "ucarp:clusters:web:password: is 22 bytes long; UCARP takes at most 19",
        ),
        (
            lambda p: p["web"]["nodes"].pop("web-b"),
            "ucarp:clusters:web:nodes: a cluster needs at least two nodes (got 1)",
        ),
        (
            lambda p: p["web"]["nodes"]["web-b"].update(ip="192.0.2.11"),
            "ucarp:clusters:web:nodes:web-b:ip: 192.0.2.11 is also the address of node web-a",
        ),
        (lambda p: p["web"].update(advbase=0), "ucarp:clusters:web:advbase: must be an integer from 1 to 255 (got 0)"),
        (
            lambda p: p["web"].update(advskew=300),
            "ucarp:clusters:web:advskew: must be an integer from 0 to 254 (got 300)",
        ),
        (
            lambda p: p["web"]["nodes"]["web-a"].update(advskew=-1),
            "ucarp:clusters:web:nodes:web-a:advskew: must be an integer from 0 to 254 (got -1)",
        ),
        (lambda p: p["web"].update(deadratio=0), "ucarp:clusters:web:deadratio: must be an integer from 1 to 255"),
        (
            lambda p: p["web"]["nodes"]["web-a"].pop("host"),
            "ucarp:clusters:web:nodes:web-a:host: missing: the minion id of the global zone that hosts this node",
        ),
        (lambda p: p["web"].update(vihd=3), "ucarp:clusters:web:vihd: unknown key"),
        (lambda p: p["web"].update(preempt="yes"), "ucarp:clusters:web:preempt: must be true or false"),
        (lambda p: p["web"].update(interface="eth0"), "ucarp:clusters:web:interface: must be a zone NIC name"),
        (lambda p: p.update({"bad name!": {}}), "ucarp:clusters:bad name!: cluster names are letters"),
        (
            lambda p: p["db"]["nodes"].update({"web-a": {"host": "gz2", "ip": "192.0.2.23"}}),
            "ucarp:clusters:web:nodes:web-a: zone web-a is also a node of cluster db",
        ),
    ],
)
def test_each_problem_names_its_key(change, expected):
    found = problems_of(change)
    assert any(p.startswith(expected) for p in found), found


def test_vhid_may_repeat_on_another_segment():
    def change(p):
        p["db"].update(vhid=101, zone={"nic_tag": "external"})

    assert problems_of(change) == []


def test_every_problem_is_reported_at_once():
    def change(p):
        p["web"].update(vhid=999, password="x" * 30)
        p["db"]["nodes"]["db-a"].pop("host")

    found = problems_of(change)
    assert len(found) == 3


@pytest.mark.parametrize("raw", [None, {}])
def test_no_clusters_is_fine(raw):
    assert model_util.normalise(raw) == ({}, [])


def test_not_a_mapping():
    assert model_util.normalise(["web"])[1] == ["ucarp:clusters: must be a mapping of cluster names to clusters"]


def test_zone_config_is_least_privilege():
    model = model_util.normalise(GOOD)[0]
    config = model_util.zone_config(model, "web-a")
    assert config["brand"] == "joyent"
    assert config["image_uuid"] == model_util.STANDARD64
    assert config["hostname"] == "web-a"
    (nic,) = config["nics"]
    assert nic == {
        "interface": "net0",
        "nic_tag": "admin",
        "ip": "192.0.2.11",
        "netmask": "255.255.255.0",
        "primary": True,
        "allowed_ips": ["192.0.2.100"],
        "allow_mac_spoofing": True,
    }


def test_zone_in_two_clusters_allows_both_vips():
    raw = copy.deepcopy(GOOD)
    raw["db"]["nodes"] = {"web-a": {"host": "gz1", "ip": "192.0.2.11"}, "web-b": {"host": "gz2", "ip": "192.0.2.12"}}
    model, problems = model_util.normalise(raw)
    assert problems == []
    assert model_util.zone_config(model, "web-a")["nics"][0]["allowed_ips"] == ["192.0.2.100", "192.0.2.110"]
    plan = model_util.host_plan(model, "gz1")
    assert [z["alias"] for z in plan["zones"]] == ["web-a"]
    assert plan["zones"][0]["fmris"] == ["svc:/network/ucarp:db", "svc:/network/ucarp:web"]
    assert sorted(n["cluster"] for n in plan["nodes"]) == ["db", "web"]


def test_ip_spoofing_only_when_asked():
    raw = copy.deepcopy(GOOD)
    raw["web"]["allow_ip_spoofing"] = True
    model = model_util.normalise(raw)[0]
    assert model_util.zone_config(model, "web-a")["nics"][0]["allow_ip_spoofing"] is True


def test_host_plan_and_options_file():
    model = model_util.normalise(GOOD)[0]
    plan = model_util.host_plan(model, "gz2")
    assert [z["alias"] for z in plan["zones"]] == ["db-b", "web-b"]
    node = next(n for n in plan["nodes"] if n["cluster"] == "web")
    assert node["conf_path"] == "/opt/local/etc/ucarp/web.conf"
    assert node["pass_path"] == "/opt/local/etc/ucarp/web.pass"
    options = [line for line in node["conf"].splitlines() if not line.startswith("#")]
    assert options == [
        "--interface=net0",
        "--srcip=192.0.2.12",
        "--vhid=101",
        "--passfile=/opt/local/etc/ucarp/web.pass",
        "--addr=192.0.2.100",
        "--advbase=1",
        "--advskew=1",
        "--deadratio=3",
        "--upscript=/opt/local/lib/ucarp/vip-up",
        "--downscript=/opt/local/lib/ucarp/vip-down",
        "--xparam=web:101:255.255.255.0",
        "--shutdown",
    ]
    assert "s3cret" not in repr(plan)
    assert model_util.host_plan(model, "gz9") == dict(plan, zones=[], nodes=[])


def test_manifest_is_a_valid_service_bundle(tmp_path):
    path = tmp_path / "ucarp.xml"
    path.write_text(model_util.render_manifest(["db", "web"]))
    svccfg = os.path.join(REPO, "tests", "sim", "bin", "svccfg")
    env = dict(os.environ, SMARTOS_SIM_ZONEROOT=str(tmp_path / "zone"))
    proc = subprocess.run(
        [sys.executable, svccfg, "validate", str(path)], capture_output=True, text=True, env=env, check=False
    )
    assert proc.returncode == 0, proc.stderr
