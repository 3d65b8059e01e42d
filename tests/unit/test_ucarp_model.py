"""Unit tests of the cluster model (_utils/ucarp_model.py): validation and rendering."""

import copy
import os
import subprocess
import sys
from xml.etree import ElementTree

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
    assert set(model) == {"web", "db", "api"}
    assert [c["kind"] for c in model["api"]["health"]["checks"]] == ["service", "tcp", "tcp", "command"]
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
    # The images its zones need, imported before vmadm create (a zone names it in its config).
    assert plan["images"] == [model_util.STANDARD64]
    assert [z["image"] for z in plan["zones"]] == [model_util.STANDARD64, model_util.STANDARD64]
    assert model_util.host_plan(model, "gz9") == dict(plan, zones=[], nodes=[], images=[])
    # A change of what the running instance has read restarts it; the hooks
    # ucarp runs afresh at each transition do not.
    assert plan["restart_on"] == ["/opt/local/lib/ucarp/ucarp-method", "/opt/local/lib/ucarp/ucarp-agent"]
    assert set(plan["restart_on"]) < set(plan["hooks"])


def test_manifest_is_a_valid_service_bundle(tmp_path):
    path = tmp_path / "ucarp.xml"
    path.write_text(model_util.render_manifest(["db", "web"], {"web": ["svc:/network/http:apache"]}))
    svccfg = os.path.join(REPO, "tests", "sim", "bin", "svccfg")
    env = dict(os.environ, SMARTOS_SIM_ZONEROOT=str(tmp_path / "zone"))
    proc = subprocess.run(
        [sys.executable, svccfg, "validate", str(path)], capture_output=True, text=True, env=env, check=False
    )
    assert proc.returncode == 0, proc.stderr


def test_fronts_are_what_the_vip_serves_and_order_the_instance():
    raw = copy.deepcopy(GOOD)
    raw["web"].update(
        fronts=["site/app"],
        on_master=[{"svc_enable": "svc:/network/http:apache"}, {"run": "logger up"}],
        health={"checks": [{"service": "svc:/site/app:default"}, {"tcp": 80}]},
    )
    model, problems = model_util.normalise(raw)
    assert problems == []
    assert model["web"]["fronts"] == ["svc:/network/http:apache", "svc:/site/app:default"]
    assert model["db"]["fronts"] == []
    manifests = {z["alias"]: ElementTree.fromstring(z["manifest"]) for z in model_util.host_plan(model, "gz1")["zones"]}
    (web,) = manifests["web-a"].findall("service/instance[@name='web']")
    (dep,) = web.findall("dependency")
    assert (dep.get("name"), dep.get("grouping"), dep.get("restart_on")) == ("fronts", "optional_all", "none")
    assert [f.get("value") for f in dep.findall("service_fmri")] == model["web"]["fronts"]
    assert manifests["db-a"].findall("service/instance[@name='db']/dependency") == []
    assert problems_of(lambda p: p["web"].update(fronts="svc:/site/app")) == [
        "ucarp:clusters:web:fronts: must be a list of service FMRIs"
    ]
    assert problems_of(lambda p: p["web"].update(fronts=["$(reboot)"])) == [
        "ucarp:clusters:web:fronts:0: '$(reboot)' is not a service FMRI such as svc:/network/http:apache"
    ]


# Health checks, the agent's files, switchover overrides.

HEALTH = {
    "checks": [
        {"service": "svc:/network/http:apache"},
        {"tcp": 80},
        {"tcp": {"port": 443, "address": "vip"}},
        {"tcp": {"port": "5432", "address": "192.0.2.50"}},
        {"command": " curl -fs http://localhost/ping | grep -q ok "},
    ],
    "fall": 5,
}


def with_health(health=HEALTH):
    raw = copy.deepcopy(GOOD)
    raw["web"]["health"] = copy.deepcopy(health)
    return raw


def test_health_normalises_with_defaults():
    model, problems = model_util.normalise(with_health())
    assert problems == []
    assert model["web"]["health"] == {
        "interval": 2,
        "timeout": 2,
        "fall": 5,
        "rise": 2,
        "port": 9201,
        "checks": [
            {"kind": "service", "fmri": "svc:/network/http:apache"},
            {"kind": "tcp", "port": 80, "address": "node"},
            {"kind": "tcp", "port": 443, "address": "vip"},
            {"kind": "tcp", "port": 5432, "address": "192.0.2.50"},
            {"kind": "command", "command": "curl -fs http://localhost/ping | grep -q ok"},
        ],
    }
    assert model["db"]["health"] is None


@pytest.mark.parametrize("health", [None, {}])
def test_no_health_is_none(health):
    model, problems = model_util.normalise(with_health(health))
    assert problems == []
    assert model["web"]["health"] is None


HP = "ucarp:clusters:web:health"
FMRI_HINT = "is not a service FMRI such as svc:/network/http:apache"


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda w: w.update(health="yes"), f"{HP}: must be a mapping (checks, interval, timeout, fall, rise, port)"),
        (lambda w: w["health"].update(interval=0), f"{HP}:interval: must be an integer from 1 to 3600 (got 0)"),
        (lambda w: w["health"].update(timeout=3601), f"{HP}:timeout: must be an integer from 1 to 3600 (got 3601)"),
        (lambda w: w["health"].update(fall=101), f"{HP}:fall: must be an integer from 1 to 100 (got 101)"),
        (lambda w: w["health"].update(rise=True), f"{HP}:rise: must be an integer from 1 to 100 (got True)"),
        (lambda w: w["health"].update(port=65536), f"{HP}:port: must be an integer from 1 to 65535 (got 65536)"),
        (
            lambda w: w["health"].update(intervall=5),
            f"{HP}:intervall: unknown key (known: checks, fall, interval, port, rise, timeout)",
        ),
        (
            lambda w: w["health"].update(checks=[]),
            f"{HP}:checks: must be a list of at least one check (service, tcp or command)",
        ),
        (
            lambda w: w["health"].pop("checks"),
            f"{HP}:checks: must be a list of at least one check (service, tcp or command)",
        ),
        (
            lambda w: w["health"]["checks"].__setitem__(0, {"http": 80}),
            f"{HP}:checks:0: a check is one of service, tcp, command with its argument",
        ),
        (
            lambda w: w["health"]["checks"].__setitem__(0, {"service": "a", "tcp": 80}),
            f"{HP}:checks:0: a check is one of service, tcp, command with its argument",
        ),
        (
            lambda w: w["health"]["checks"].__setitem__(0, {"service": "not an fmri!"}),
            f"{HP}:checks:0:service: 'not an fmri!' {FMRI_HINT}",
        ),
        (
            lambda w: w["health"]["checks"].__setitem__(1, {"tcp": 0}),
            f"{HP}:checks:1:tcp:port: must be a TCP port from 1 to 65535 (got 0)",
        ),
        (
            lambda w: w["health"]["checks"].__setitem__(2, {"tcp": {"address": "vip"}}),
            f"{HP}:checks:2:tcp:port: must be a TCP port from 1 to 65535 (got None)",
        ),
        (
            lambda w: w["health"]["checks"][2]["tcp"].update(host="db"),
            f"{HP}:checks:2:tcp:host: unknown key (known: address, port)",
        ),
        (
            lambda w: w["health"]["checks"][2]["tcp"].update(address="nowhere"),
            f"{HP}:checks:2:tcp:address: must be node, vip or an IPv4 address (got 'nowhere')",
        ),
        (
            lambda w: w["health"]["checks"].__setitem__(4, {"command": "true\nfalse"}),
            f"{HP}:checks:4:command: must be a one-line, non-empty command line",
        ),
        (
            lambda w: w["health"]["checks"].__setitem__(4, {"command": "  "}),
            f"{HP}:checks:4:command: must be a one-line, non-empty command line",
        ),
        (
            lambda w: w.update(on_backup=[{"svc_disable": "svc:/network/http:apache"}]),
            f"{HP}:checks: svc:/network/http:apache is checked for health but on_backup disables it:"
            " every backup would be unhealthy and none could take the VIP",
        ),
    ],
)
def test_each_health_problem_names_its_key(change, expected):
    raw = with_health()
    change(raw["web"])
    assert model_util.normalise(raw)[1] == [expected]


def test_only_disabling_a_checked_service_on_backup_is_a_problem():
    raw = with_health()
    raw["web"]["on_backup"] = [
        {"svc_disable": "svc:/network/smtp:sendmail"},
        {"svc_restart": "svc:/network/http:apache"},
    ]
    raw["web"]["on_master"] = [{"svc_disable": "svc:/network/http:apache"}]
    assert model_util.normalise(raw)[1] == []


def test_checks_file_of_a_node():
    raw = with_health()
    raw["web"]["nodes"]["web-c"] = {"host": "gz3", "ip": "192.0.2.13"}
    model = model_util.normalise(raw)[0]
    text = model_util.render_checks(model["web"], "web-b")
    assert text.startswith("# Health checks of svc:/network/ucarp:web in zone web-b")
    assert [line for line in text.splitlines() if not line.startswith("#")] == [
        "interval 2",
        "timeout 2",
        "fall 5",
        "rise 2",
        "listen 192.0.2.12 9201",
        "peer 192.0.2.11 9201",
        "peer 192.0.2.13 9201",
        "check service svc:/network/http:apache",
        "check tcp 192.0.2.12 80",
        "check tcp vip 443",
        "check tcp 192.0.2.50 5432",
        "check command curl -fs http://localhost/ping | grep -q ok",
    ]
    assert model_util.render_checks(model["db"], "db-a") is None


def test_host_plan_carries_the_checks_file():
    model = model_util.normalise(with_health())[0]
    nodes = {n["cluster"]: n for n in model_util.host_plan(model, "gz1")["nodes"]}
    assert nodes["web"]["checks_path"] == "/opt/local/etc/ucarp/web.checks"
    assert nodes["web"]["checks"] == model_util.render_checks(model["web"], "web-a")
    assert "listen 192.0.2.11 9201" in nodes["web"]["checks"]
    assert (nodes["db"]["checks_path"], nodes["db"]["checks"]) == ("/opt/local/etc/ucarp/db.checks", None)


@pytest.mark.parametrize(
    ("mode", "deadratio", "lines"),
    [
        ("preempt", 3, ["--preempt", "--advskew=0"]),
        ("slow", 3, ["--deadratio=11"]),
        ("slow", 100, ["--deadratio=255"]),
        ("keep-vip", 3, ["keep-vip", "--neutral"]),
    ],
)
def test_override_lines(mode, deadratio, lines):
    raw = copy.deepcopy(GOOD)
    raw["web"]["deadratio"] = deadratio
    cluster = model_util.normalise(raw)[0]["web"]
    assert model_util.override_lines(cluster, mode, 1700000300.7) == [*lines, "expires 1700000300"]


def test_unknown_override_is_an_error():
    cluster = model_util.normalise(GOOD)[0]["web"]
    with pytest.raises(ValueError, match=r"^unknown override 'fast' \(known: preempt, slow, keep-vip\)$"):
        model_util.override_lines(cluster, "fast", 0)


FILE = {"type": "file", "mode": "0644", "uid": 0}


@pytest.mark.parametrize(
    ("stat", "text", "info"),
    [
        (None, None, None),
        (FILE, "--deadratio=11\nexpires 1000\n", {"mode": "slow", "expires": 1000, "ignored": None}),
        (FILE, "keep-vip\n--neutral\nexpires 1000\n", {"mode": "keep-vip", "expires": 1000, "ignored": None}),
        (FILE, "--preempt\n--advskew=0\nexpires 999\n",
         {"mode": "preempt", "expires": 999, "ignored": "expired: left by an interrupted switchover or rollout"}),
        (FILE, "--deadratio=11\n",
         {"mode": "slow", "expires": None, "ignored": "no expiry: left by an older formula or written by hand"}),
        ({"type": "link", "mode": "0777", "uid": 0}, None,
         {"mode": None, "expires": None, "ignored": "not a regular file (link)"}),
        (dict(FILE, uid=100), None, {"mode": None, "expires": None, "ignored": "owned by uid 100, not root"}),
        (dict(FILE, mode="0666"), None, {"mode": None, "expires": None, "ignored": "writable by others (mode 0666)"}),
        (dict(FILE, mode="0664"), None, {"mode": None, "expires": None, "ignored": "writable by others (mode 0664)"}),
    ],
)  # fmt: skip
def test_override_info_trusts_a_root_file_until_it_expires(stat, text, info):
    assert model_util.override_info(stat, text, now=1000) == info


def test_parse_health_keeps_the_last_good_record_of_each_seq():
    text = "\n".join(
        [
            "1 1700000000 healthy web eligible",
            "2 1700000010 sick web stepped-down tcp 192.0.2.12:80 does not accept connections",
            "3 1700000011 sick db ineligible service svc:/network/http:apache is offline",
            "garbage",
            "",
            "4 1700000020 unwell web eligible",
            "5 1700000021 healthy web promoted",
            "x 1700000022 healthy web eligible",
            "2 1700000012 sick web kept-vip command check 1 exited 1",
            "  6 1700000030 healthy web ineligible   ",
        ]
    )
    assert model_util.parse_health(text, "web") == [
        {"epoch": "", "seq": 1, "ts": 1700000000, "state": "healthy", "action": "eligible", "detail": None},
        {"epoch": "", "seq": 2, "ts": 1700000012, "state": "sick", "action": "kept-vip",
         "detail": "command check 1 exited 1"},
        {"epoch": "", "seq": 6, "ts": 1700000030, "state": "healthy", "action": "ineligible", "detail": None},
    ]  # fmt: skip
    assert [r["seq"] for r in model_util.parse_health(text, "db")] == [3]
    assert model_util.parse_health("", "web") == []


def test_node_files():
    assert model_util.node_files("web") == {
        "conf": "/opt/local/etc/ucarp/web.conf",
        "pass": "/opt/local/etc/ucarp/web.pass",
        "checks": "/opt/local/etc/ucarp/web.checks",
        "transitions": "/var/db/ucarp/web.transitions",
        "health": "/var/db/ucarp/web.health",
        "transitions_epoch": "/var/db/ucarp/web.transitions.epoch",
        "health_epoch": "/var/db/ucarp/web.health.epoch",
        "override": "/var/db/ucarp/web.override",
    }
    assert model_util.health_path("web") == "/var/db/ucarp/web.health"


def test_manifest_stops_and_refreshes_through_the_agent_and_ignores_its_restarts():
    root = ElementTree.fromstring(model_util.render_manifest(["web"]))
    service = root.find("service")
    methods = {m.get("name"): m.get("exec") for m in service.findall("exec_method")}
    assert methods == {
        "start": "/opt/local/lib/ucarp/ucarp-method %i",
        "stop": "/opt/local/lib/ucarp/ucarp-method %i stop",  # the agent hands the VIP over first
        "refresh": "/opt/local/lib/ucarp/ucarp-method %i refresh",
    }
    startd = service.find("property_group[@name='startd']")
    assert {p.get("name"): p.get("value") for p in startd.findall("propval")} == {
        "duration": "contract",
        "ignore_error": "core,signal",
    }


# Records: epochs and cursors ------------------------------------------------------

EA, EB, EC = "aaaaaaaaaaaaaaaa", "bbbbbbbbbbbbbbbb", "cccccccccccccccc"


def transitions(*records):
    return "".join(f"{seq}@{epoch} {seq} {role} web 192.0.2.100 101 net0\n" for seq, epoch, role in records)


def test_records_carry_their_epoch_and_come_in_file_order_of_epochs():
    text = "1 5 backup web 192.0.2.100 101 net0\n" + transitions((2, EB, "master"), (1, EA, "backup"), (3, EB, "x"))
    found = model_util.parse_records("transition", text, "web", "192.0.2.100")
    assert [(r["epoch"], r["seq"]) for r in found] == [("", 1), (EB, 2), (EA, 1)]
    assert model_util.parse_records("transition", "1@short 5 master web 192.0.2.100 101 net0\n", "web",
                                    "192.0.2.100") == []  # fmt: skip


@pytest.mark.parametrize(
    ("cursor", "record", "covered"),
    [
        (None, {"epoch": EA, "seq": 1}, False),
        ({"epoch": EA, "seq": 3}, {"epoch": EA, "seq": 3}, True),
        ({"epoch": EA, "seq": 3}, {"epoch": EA, "seq": 4}, False),
        ({"epoch": EB, "seq": 1, "passed": [EA]}, {"epoch": EA, "seq": 99}, True),
        ({"epoch": EB, "seq": 1, "passed": [EA]}, {"epoch": EC, "seq": 1}, False),
        (5, {"epoch": "", "seq": 5}, True),  # a cursor from before epochs
        (5, {"epoch": EA, "seq": 1}, False),
    ],
)
def test_a_cursor_covers_its_epoch_up_to_its_number_and_the_epochs_it_left(cursor, record, covered):
    assert model_util.covers(cursor, record) is covered


def test_advance_moves_on_to_a_new_epoch_and_ignores_one_left():
    cur = model_util.advance(None, {"epoch": EA, "seq": 4})
    assert model_util.advance(cur, {"epoch": EA, "seq": 2}) == {"epoch": EA, "seq": 4, "passed": []}
    cur = model_util.advance(cur, {"epoch": EB, "seq": 1})
    assert cur == {"epoch": EB, "seq": 1, "passed": [EA]}
    assert model_util.advance(cur, {"epoch": EA, "seq": 9}) == cur
    for n in range(40):
        cur = model_util.advance(cur, {"epoch": f"{n:016x}", "seq": 1})
    assert len(cur["passed"]) == model_util.PASSED_EPOCHS


@pytest.mark.parametrize(
    ("text", "cursor", "expected"),
    [
        # the usual: what comes after the cursor
        (transitions((1, EA, "backup"), (2, EA, "master")), {"epoch": EA, "seq": 1}, [(EA, 2)]),
        # emptied, then written again in a new epoch
        (transitions((1, EB, "master")), {"epoch": EA, "seq": 7}, [(EB, 1)]),
        # an older copy: nothing new until the recorder writes in a new epoch
        (transitions((1, EA, "backup"), (2, EA, "master")), {"epoch": EA, "seq": 7}, []),
        (transitions((1, EA, "backup"), (2, EA, "master"), (3, EB, "backup")), {"epoch": EA, "seq": 7}, [(EB, 3)]),
        # rolled back to an epoch left before: not replayed
        (transitions((1, EA, "backup"), (2, EC, "master")), {"epoch": EB, "seq": 4, "passed": [EA]}, [(EC, 2)]),
        # older records of an epoch the cursor never saw, before the one it is in: not replayed
        (transitions((1, EC, "backup"), (2, EA, "master"), (3, EA, "backup")), {"epoch": EA, "seq": 2}, [(EA, 3)]),
        (transitions((1, EA, "backup")), None, [(EA, 1)]),
    ],
    ids=["after", "emptied", "older-copy", "older-copy-then-new", "rolled-back", "unseen-before", "fresh"],
)
def test_records_after_a_cursor(text, cursor, expected):
    found = model_util.parse_records("transition", text, "web", "192.0.2.100")
    assert [(r["epoch"], r["seq"]) for r in model_util.records_after(found, cursor)] == expected


def test_record_keys_and_tags():
    uuid = "2d1b2f5e-0c6a-4a3e-9c1d-6f7e8a9b0c1d"
    assert model_util.record_key(uuid, "web", "health") == f"{uuid}/web/health"
    assert model_util.is_record_key(f"{uuid}/web/transition")
    assert not model_util.is_record_key(f"{uuid}/web/other") and not model_util.is_record_key("../x/web/health")
    assert model_util.migrated_record_key(f"{uuid}/web") == f"{uuid}/web/transition"
    assert model_util.migrated_record_key("junk") is None
    assert model_util.record_tag("transition", "web", {"role": "master"}) == "ucarp/web/master"
    assert model_util.record_tag("health", "web", {"state": "sick"}) == "ucarp/web/health/sick"
    assert model_util.record_path("health", "web") == "/var/db/ucarp/web.health"
