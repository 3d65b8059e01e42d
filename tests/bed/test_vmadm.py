"""Conformance of the simulated vmadm with SmartOS (REFERENCE.md; imgadm: test_imgadm.py).

Each test checks the message, the stream it goes to and the exit status.
"""

import json
import os

import pytest
from support import IMAGE, UNKNOWN, recipe_gz, recipe_zone

pytestmark = pytest.mark.root


@pytest.fixture(scope="module")
def gz(bed):
    return recipe_gz(bed, "gz-vmadm")


@pytest.fixture(scope="module")
def zone(gz):
    return gz.create(recipe_zone("conform", "192.0.2.21"))


def test_create_from_stdin_reports_on_stderr_only(gz):
    proc = gz.run("vmadm", "create", stdin=json.dumps(recipe_zone("stdin-zone", "192.0.2.22")))
    assert proc.returncode == 0
    assert proc.stdout == ""
    assert proc.stderr.startswith("Successfully created VM ")
    uuid = proc.stderr.split()[-1]
    assert len(uuid) == 36
    assert gz.run("vmadm", "delete", uuid).returncode == 0


def test_create_from_file(gz, tmp_path):
    path = tmp_path / "zone.json"
    path.write_text(json.dumps(recipe_zone("file-zone", "192.0.2.23", autoboot=False)))
    proc = gz.run("vmadm", "create", "-f", str(path))
    assert proc.returncode == 0, proc.stderr
    uuid = proc.stderr.split()[-1]
    vm = gz.get(uuid)
    assert vm["state"] == "stopped"
    assert vm["zone_state"] == "installed"
    assert gz.run("vmadm", "delete", uuid).returncode == 0


def test_get_shows_a_joyent_zone(gz, zone):
    proc = gz.run("vmadm", "get", zone)
    assert proc.returncode == 0
    assert proc.stderr == ""
    assert proc.stdout.startswith("{\n  ")  # pretty JSON
    vm = json.loads(proc.stdout)
    assert vm["uuid"] == vm["zonename"] == zone
    assert vm["image_uuid"] == IMAGE  # dataset_uuid is the old name of image_uuid
    assert vm["brand"] == "joyent"
    assert vm["state"] == "running"
    assert vm["zone_state"] == "running"
    assert vm["zonepath"].endswith(f"/zones/{zone}")
    assert os.path.isdir(os.path.join(vm["zonepath"], "root", "var"))  # the zone's /var, seen from the GZ
    nic = vm["nics"][0]
    assert nic["interface"] == "net0"
    assert nic["ip"] == "192.0.2.21"
    assert nic["ips"] == ["192.0.2.21/24"]
    assert nic["netmask"] == "255.255.255.0"
    assert nic["primary"] is True
    assert nic["mac"].count(":") == 5


def test_get_unknown_uuid(gz):
    proc = gz.run("vmadm", "get", UNKNOWN)
    assert proc.returncode == 1
    assert proc.stdout == ""
    assert proc.stderr.strip() == f"zoneadm: {UNKNOWN}: No such zone configured"


@pytest.mark.parametrize("command", ["get", "start", "stop", "reboot", "delete", "update", "info"])
@pytest.mark.parametrize("bad", ["conform", "$(touch /tmp/pwned)", "../../etc/passwd", ""])
def test_commands_take_a_uuid_only(gz, command, bad):
    proc = gz.run("vmadm", command, bad)
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert proc.stderr.splitlines()[0] == f"Invalid or missing UUID for {command}"
    assert not os.path.exists("/tmp/pwned")


def test_lookup_prints_uuids_and_json(gz, zone):
    proc = gz.run("vmadm", "lookup", "alias=conform")
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, f"{zone}\n", "")
    whole = json.loads(gz.run("vmadm", "lookup", "-j", "alias=conform").stdout)
    assert isinstance(whole, list) and whole[0]["uuid"] == zone and "nics" in whole[0]
    some = json.loads(gz.run("vmadm", "lookup", "-j", "-o", "uuid,alias", "alias=conform").stdout)
    assert some == [{"uuid": zone, "alias": "conform"}]
    by_nic = gz.run("vmadm", "lookup", "nics.*.ip=192.0.2.21").stdout.split()
    assert by_nic == [zone]
    by_regex = gz.run("vmadm", "lookup", "alias=~^conf").stdout.split()
    assert by_regex == [zone]


def test_lookup_unique(gz, zone):
    proc = gz.run("vmadm", "lookup", "-1", "alias=conform")
    assert (proc.returncode, proc.stdout.strip()) == (0, zone)
    proc = gz.run("vmadm", "lookup", "-1", "alias=nothing-like-this")
    assert proc.returncode == 1
    assert proc.stdout == ""
    assert proc.stderr.strip() == "Requested unique lookup but found 0 results."
    other = gz.create(recipe_zone("twin", "192.0.2.24", autoboot=False))
    twin = gz.create(recipe_zone("twin", "192.0.2.25", autoboot=False))
    proc = gz.run("vmadm", "lookup", "-1", "alias=twin")
    assert proc.returncode == 1
    assert proc.stderr.strip() == "Requested unique lookup but found 2 results."
    for uuid in (other, twin):
        gz.run("vmadm", "delete", uuid, check=True)


def test_lookup_o_needs_j(gz):
    proc = gz.run("vmadm", "lookup", "-o", "uuid")
    assert proc.returncode == 1
    assert proc.stderr.strip() == "Cannot specify -o without -j"


def test_list_table_and_parsable(gz, zone):
    proc = gz.run("vmadm", "list")
    lines = proc.stdout.splitlines()
    assert lines[0].split() == ["UUID", "TYPE", "RAM", "STATE", "ALIAS"]
    assert [zone, "OS", "512", "running", "conform"] in [line.split() for line in lines[1:]]
    parsable = gz.run("vmadm", "list", "-p", "-o", "uuid,alias,nics.0.mac").stdout.splitlines()
    row = next(r for r in parsable if r.startswith(zone))
    # ':' separates fields and nothing is escaped: a MAC breaks the format.
    assert len(row.split(":")) == 2 + 6


def test_start_stop_and_their_no_op_messages(gz):
    uuid = gz.create(recipe_zone("cycle", "192.0.2.26"))
    proc = gz.run("vmadm", "start", uuid)
    assert (proc.returncode, proc.stdout, proc.stderr.strip()) == (0, "", f"VM {uuid} is already 'running'")
    proc = gz.run("vmadm", "stop", uuid)
    assert (proc.returncode, proc.stderr.strip()) == (0, f"Successfully completed stop for VM {uuid}")
    assert gz.get(uuid)["state"] == "stopped"
    proc = gz.run("vmadm", "stop", "-F", uuid)
    assert proc.returncode == 0
    assert proc.stderr.strip() == f"VM {uuid} is already not 'running' (currently: stopped)"
    proc = gz.run("vmadm", "start", uuid)
    assert (proc.returncode, proc.stderr.strip()) == (0, f"Successfully started VM {uuid}")
    assert gz.get(uuid)["state"] == "running"
    proc = gz.run("vmadm", "reboot", uuid)
    assert (proc.returncode, proc.stderr.strip()) == (0, f"Successfully completed reboot for VM {uuid}")
    proc = gz.run("vmadm", "delete", uuid)
    assert (proc.returncode, proc.stderr.strip()) == (0, f"Successfully deleted VM {uuid}")
    assert gz.run("vmadm", "get", uuid).returncode == 1


@pytest.mark.parametrize("force", [["-F"], []], ids=["halt", "clean"])
def test_stop_kills_every_process_of_the_zone(gz, force):
    uuid = gz.create(recipe_zone("halt", "192.0.2.27"))
    pid = gz.get(uuid)["pid"]
    gz.zlogin(uuid, "sleep 1000 </dev/null >/dev/null 2>&1 &")
    ours = [p for p in os.listdir("/proc") if p.isdigit() and _ns_of(p) == _ns_of(pid)]
    assert len(ours) >= 2
    gz.run("vmadm", "stop", *force, uuid, check=True)  # clean: what no service stopped is ended too
    assert [p for p in ours if _alive(p)] == []
    gz.run("vmadm", "delete", uuid, check=True)
    assert not os.path.exists(os.path.join(gz.root, "zones", uuid))


def _ns_of(pid):
    try:
        return os.readlink(f"/proc/{pid}/ns/pid")
    except OSError:
        return None


def _alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"max_physical_memory": "lots"}, "Invalid value(s) for: max_physical_memory"),
        ({"max_physical_memory": -1, "autoboot": "maybe"}, "Invalid value(s) for: max_physical_memory,autoboot"),
        ({"dataset_uuid": UNKNOWN}, "Invalid value(s) for: image_uuid"),
        (
            {"nics": [{"nic_tag": "admin", "ip": "192.0.2.300", "netmask": "255.255.255.0"}]},
            "Invalid value(s) for: nics.0.ip",
        ),
        ({"nics": [{"nic_tag": "nowhere", "ip": "192.0.2.30"}]}, 'Invalid nic tag "nowhere"'),
        ({"nics": [{"ip": "192.0.2.30"}]}, "Missing required properties: nics.0.nic_tag"),
        ({"brand": None}, "Missing required properties: brand"),
        ({"dataset_uuid": None}, "Missing required properties: image_uuid"),
    ],
)
def test_create_rejects_bad_payloads(gz, change, message):
    payload = recipe_zone("bad", "192.0.2.30")
    for key, value in change.items():
        if value is None:
            payload.pop(key)
        else:
            payload[key] = value
    before = gz.run("vmadm", "list", "-p", "-o", "uuid").stdout
    proc = gz.run("vmadm", "create", stdin=json.dumps(payload))
    assert proc.returncode == 1
    assert proc.stdout == ""
    assert proc.stderr.strip() == message
    assert gz.run("vmadm", "list", "-p", "-o", "uuid").stdout == before


@pytest.mark.parametrize("payload", ["{not json", "[1, 2]", '"text"', '{"alias": "a\u0000b"}'])
def test_garbage_gets_an_error_not_a_traceback(gz, payload):
    proc = gz.run("vmadm", "create", stdin=payload)
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip()


def test_unknown_properties_are_dropped(gz):
    uuid = gz.create(recipe_zone("extra", "192.0.2.31", autoboot=False, frobnicate=True))
    assert "frobnicate" not in gz.get(uuid)
    gz.run("vmadm", "delete", uuid, check=True)


def test_update_properties_and_nics(gz, zone):
    proc = gz.run("vmadm", "update", zone, "max_physical_memory=1024", "alias=conform")
    assert (proc.returncode, proc.stdout, proc.stderr.strip()) == (0, "", f"Successfully updated VM {zone}")
    assert gz.get(zone)["max_physical_memory"] == 1024
    proc = gz.run("vmadm", "update", zone, stdin="{}")
    assert (proc.returncode, proc.stderr.strip()) == (0, f"Successfully updated VM {zone}")  # even when nothing changed
    mac = gz.get(zone)["nics"][0]["mac"]
    payload = {"update_nics": [{"mac": mac, "allowed_ips": ["192.0.2.100"]}]}
    proc = gz.run("vmadm", "update", zone, stdin=json.dumps(payload))
    assert proc.returncode == 0, proc.stderr
    assert gz.get(zone)["nics"][0]["allowed_ips"] == ["192.0.2.100"]
    payload = {"update_nics": [{"mac": "00:00:00:00:00:01", "allowed_ips": ["192.0.2.100"]}]}
    proc = gz.run("vmadm", "update", zone, stdin=json.dumps(payload))
    assert (proc.returncode, proc.stderr.strip()) == (1, "Invalid value(s) for: update_nics.0.mac")
    proc = gz.run("vmadm", "update", zone, stdin=json.dumps({"update_nics": [{"mac": mac, "allowed_ips": ["x"] * 14}]}))
    assert (proc.returncode, proc.stderr.strip()) == (1, "Invalid value(s) for: update_nics.0.allowed_ips")


def test_validate(gz, tmp_path):
    path = tmp_path / "zone.json"
    path.write_text(json.dumps(recipe_zone("valid", "192.0.2.32")))
    proc = gz.run("vmadm", "validate", "create", "-f", str(path))
    assert (proc.returncode, proc.stderr.strip()) == (0, "VALID 'create' payload for joyent brand VMs.")
    path.write_text(json.dumps(recipe_zone("valid", "192.0.2.32", max_swap="x")))
    proc = gz.run("vmadm", "validate", "create", "-f", str(path))
    assert proc.returncode == 1
    assert json.loads(proc.stderr)["bad_values"] == ["max_swap"]


def test_usage_errors_exit_2(gz):
    proc = gz.run("vmadm", "frobnicate")
    assert proc.returncode == 2
    assert proc.stderr.splitlines()[0] == 'Invalid command: "frobnicate".'
    assert gz.run("vmadm").returncode == 2
