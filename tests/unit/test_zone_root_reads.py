"""What a state run learns about zones without a process per question.

``_utils/zone_root.py`` reads files under a zone's root, refusing what a
hostile zone may plant; ``_modules/zlogin.py`` uses it in a run (and only
for a running zone), falls back to ``zlogin`` for whatever it refuses or
does not find, and answers SMF questions from one ``svcs -Z``.
"""

import hashlib
import os

import pytest
from salt.exceptions import CommandExecutionError
from support import FakeRun, formula_utils, load_salt_module

UUID = "5c1b5a8e-0c55-4b2c-8b3a-2d7d0e6d0f7e"
OTHER = "7d2c6b9f-1d66-4c3d-9c4b-3e8e1f7e1a8f"
CONF = "/opt/local/etc/ucarp/web.conf"
FMRI = "svc:/network/ucarp:web"

UTILS = formula_utils()


def reply(stdout="", stderr="", retcode=0):
    return {"stdout": stdout, "stderr": stderr, "retcode": retcode}


def od(data):
    return " ".join(f"{b:02x}" for b in data) + "\n"


@pytest.fixture
def zonepath(tmp_path):
    root = tmp_path / "zones" / UUID / "root"
    (root / "opt/local/etc/ucarp").mkdir(parents=True)
    (root / "opt/local/etc/ucarp/web.conf").write_text("--vhid=1\n")
    return tmp_path / "zones" / UUID


@pytest.fixture
def run():
    return FakeRun()


@pytest.fixture
def zlogin(run, zonepath):
    vms = {UUID: {"uuid": UUID, "alias": "web-a", "state": "running", "zonepath": str(zonepath)}}

    def get(zone):
        for vm in vms.values():
            if zone in (vm["uuid"], vm["alias"]):
                return vm
        raise CommandExecutionError(f"vmadm: no VM has the alias '{zone}'")

    module = load_salt_module(
        "_modules", "zlogin", salt={"cmd.run_all": run, "vmadm.get": get, "vmadm.uuid": lambda z: get(z)["uuid"]}
    )
    module.vms = vms
    module.__utils__["run_cache.begin"](module.__context__, "run-1")
    return module


def zlogins(run):
    return [argv for argv in run.argvs() if argv[0] == "zlogin"]


def test_a_run_reads_a_zone_file_under_its_root_with_no_process(zlogin, run):
    assert zlogin.file_read(UUID, CONF) == "--vhid=1\n"
    assert zlogin.file_hash("web-a", CONF) == hashlib.sha256(b"--vhid=1\n").hexdigest()
    stat = zlogin.file_stat(UUID, CONF)
    assert (stat["type"], stat["size"]) == ("file", 9)
    assert stat["mode"] == f"{os.stat(zlogin.vms[UUID]['zonepath'] + '/root' + CONF).st_mode & 0o7777:04o}"
    assert run.argvs() == []


@pytest.mark.parametrize("plant", ["symlink", "fifo", "huge", "linked-directory"])
def test_what_a_zone_plants_is_refused_and_read_through_zlogin(zlogin, run, zonepath, tmp_path, plant):
    """A symlink (at the file or on the way), a FIFO, a file too big: never
    followed, opened or taken whole from the global zone's side."""
    root = zonepath / "root"
    target = tmp_path / "global-zone-secret"
    target.write_text("the global zone's own file\n")
    conf = root / "opt/local/etc/ucarp/web.conf"
    conf.unlink()
    if plant == "symlink":
        conf.symlink_to(target)
    elif plant == "fifo":
        os.mkfifo(conf)  # opening it for reading would block without O_NONBLOCK
    elif plant == "huge":
        with open(conf, "wb") as fh:
            fh.truncate(UTILS["zone_root.try_read"].__globals__["MAX_SIZE"] + 1)
    else:
        (root / "opt/local/etc/ucarp").rename(root / "opt/local/etc/elsewhere")
        (root / "opt/local/etc/ucarp").symlink_to(tmp_path)
    run.results[("zlogin",)] = reply(od(b"--vhid=2\n"))
    assert zlogin.file_read(UUID, CONF) == "--vhid=2\n"  # what the zone itself says
    assert len(zlogins(run)) == 1
    assert zlogin.refused(UUID, CONF)
    assert target.read_text() == "the global zone's own file\n"


def test_a_file_missing_under_the_root_is_missing_with_no_process(zlogin, run):
    assert zlogin.file_hash(UUID, "/opt/local/etc/ucarp/gone.conf") is None
    assert zlogin.file_stat(UUID, "/opt/local/etc/ucarp/gone.conf") is None
    assert zlogin.file_read(UUID, "/var/db/ucarp/none.transitions", missing_ok=True) is None
    with pytest.raises(zlogin.ZoneFileMissing):
        zlogin.file_read(UUID, "/opt/local/etc/ucarp/gone.conf")
    assert run.argvs() == []
    assert zlogin.refused(UUID, "/opt/local/etc/ucarp/gone.conf") is None


def test_a_zone_that_does_not_run_is_asked_through_zlogin(zlogin, run):
    zlogin.vms[UUID]["state"] = "stopped"
    run.results[("zlogin",)] = reply(stderr="zlogin: login allowed only to running zones (web-a is 'installed').\n",
                                     retcode=1)  # fmt: skip
    with pytest.raises(CommandExecutionError, match="login allowed only to running zones"):
        zlogin.file_read(UUID, CONF)


def test_outside_a_run_every_read_goes_through_zlogin(zlogin, run):
    zlogin.__context__.clear()
    run.results[("zlogin",)] = reply(od(b"--vhid=1\n"))
    assert zlogin.file_read(UUID, CONF) == "--vhid=1\n"
    assert len(zlogins(run)) == 1


def test_owners_other_than_root_are_the_zones_to_name(zlogin, run, zonepath):
    if os.geteuid() != 0:
        pytest.skip("needs root to give a file another owner")
    os.chown(zonepath / "root" / CONF.lstrip("/"), 1000, 1000)
    listing = "-rw-r--r-- 1 1000 1000 9 Dec 1 10:00 x\n-rw-r--r-- 1 admin staff 9 Dec 1 10:00 x\n"
    run.results[("zlogin",)] = reply(listing)
    assert zlogin.file_stat(UUID, CONF)["user"] == "admin"
    assert len(zlogins(run)) == 1


SVCS_Z = (
    f"{UUID} online         {FMRI}\n"
    f"{UUID} disabled       svc:/network/ucarp:db\n"
    f"{OTHER} online         svc:/milestone/network:default\n"
    "global online         svc:/system/smartdc/vmadmd:default\n"
)


def test_smf_questions_of_every_zone_cost_one_svcs_z(zlogin, run):
    run.results[("svcs", "-Z")] = reply(SVCS_Z)
    assert zlogin.svc_state(UUID, FMRI) == "online"
    assert zlogin.svc_state("web-a", "svc:/network/ucarp:db") == "disabled"
    assert zlogin.svc_state(UUID, "svc:/network/ucarp:gone") is None
    assert zlogin.svc_instances(UUID, "svc:/network/ucarp") == {FMRI: "online", "svc:/network/ucarp:db": "disabled"}
    assert zlogin.svc_instances(UUID, "svc:/network/ucarp:*") == {FMRI: "online", "svc:/network/ucarp:db": "disabled"}
    assert run.argvs() == [["svcs", "-Z", "-a", "-H", "-o", "zone,state,fmri"]]


def test_what_is_done_to_a_zones_smf_is_asked_again_of_that_zone(zlogin, run):
    """Once, from the global zone (svcs -z): no zlogin."""
    run.results[("svcs", "-Z")] = reply(SVCS_Z)
    run.results[("zlogin", "-Q", "-n", UUID, f"svcadm disable -s {FMRI}")] = reply()
    run.results[("svcs", "-z", UUID)] = reply(f"disabled {FMRI}\nonline svc:/network/ucarp:db\n")
    assert zlogin.svc_state(UUID, FMRI) == "online"
    zlogin.svc_disable(UUID, FMRI)
    assert zlogin.svc_state(UUID, FMRI) == "disabled"
    assert zlogin.svc_state(UUID, "svc:/network/ucarp:db") == "online"
    assert zlogin.svc_state(OTHER, "svc:/milestone/network:default") == "online"  # still from the snapshot
    assert [a[:2] for a in run.argvs() if a[0] == "svcs"] == [["svcs", "-Z"], ["svcs", "-z"]]
    assert run.argvs()[-1] == ["svcs", "-z", UUID, "-a", "-H", "-o", "state,fmri"]


def test_a_zone_svcs_z_cannot_reach_is_asked_through_zlogin(zlogin, run):
    """svcs -z fails for a zone that stopped after the run's svcs -Z: zlogin
    then names the reason, for that zone only."""
    run.results[("svcs", "-Z")] = reply(SVCS_Z)
    run.results[("zlogin", "-Q", "-n", UUID, f"svcadm disable -s {FMRI}")] = reply()
    run.results[("svcs", "-z", UUID)] = reply(
        stderr=f"svcs: Could not bind to repository server for zone {UUID}: repository server unavailable\n",
        retcode=1,
    )
    run.results[("zlogin", "-Q", "-n", UUID, f"svcs -H -o state,fmri {FMRI}")] = reply(
        stderr="zlogin: login allowed only to running zones (web-a is 'installed').\n", retcode=1
    )
    assert zlogin.svc_state(UUID, FMRI) == "online"
    zlogin.svc_disable(UUID, FMRI)
    with pytest.raises(CommandExecutionError, match="login allowed only to running zones"):
        zlogin.svc_state(UUID, FMRI)
    assert zlogin.svc_state(OTHER, "svc:/milestone/network:default") == "online"


def test_a_zone_missing_from_svcs_z_is_asked_itself_and_its_failure_named(zlogin, run):
    """A zone that halted while svcs -Z ran is not in its output: asking it
    fails with zlogin's reason, for that zone only."""
    run.results[("svcs", "-Z")] = reply(f"{OTHER} online svc:/milestone/network:default\n")
    run.results[("zlogin",)] = reply(stderr="zlogin: login allowed only to running zones (web-a is 'installed').\n",
                                     retcode=1)  # fmt: skip
    with pytest.raises(CommandExecutionError, match=f"zone {UUID}: login allowed only to running zones"):
        zlogin.svc_state(UUID, FMRI)
    assert zlogin.svc_state(OTHER, "svc:/milestone/network:default") == "online"


def test_installed_package_read_from_the_pkgsrc_database(zlogin, run, zonepath):
    pkgdb = zonepath / "root/opt/local/pkg"
    (pkgdb / "ucarp-1.5.2nb2").mkdir(parents=True)
    (pkgdb / "ucarp-1.5.2nb2/+CONTENTS").write_text("@name ucarp-1.5.2nb2\n")
    (pkgdb / "ucarp-extras-2.0").mkdir()
    assert zlogin.pkg_version(UUID, "ucarp") == "1.5.2nb2"
    assert run.argvs() == []
    # Not in the database (or no +CONTENTS): pkgin in the zone says.
    run.results[("zlogin",)] = reply("")
    assert zlogin.pkg_version(UUID, "ucarp-extras") is None
    assert len(zlogins(run)) == 1


def test_a_package_the_database_does_not_list_is_not_installed_and_costs_no_process(zlogin, run, zonepath):
    (zonepath / "root/opt/local/pkg/pkgin-23.8.1").mkdir(parents=True)
    (zonepath / "root/opt/local/pkg/pkgin-23.8.1/+CONTENTS").write_text("@name pkgin-23.8.1\n")
    assert zlogin.pkg_version(UUID, "ucarp") is None
    assert run.argvs() == []


def test_installing_a_package_is_one_zlogin_when_the_database_can_be_read(zlogin, run, zonepath):
    """pkgin runs once: before and after are read from the database."""
    pkgdb = zonepath / "root/opt/local/pkg"
    pkgdb.mkdir(parents=True)

    def installed(*_args, **_kwargs):
        (pkgdb / "ucarp-1.5.2").mkdir()
        (pkgdb / "ucarp-1.5.2/+CONTENTS").write_text("@name ucarp-1.5.2\n")
        return reply("installing ucarp-1.5.2...\n")

    run.results[("zlogin", "-Q", "-n", UUID, "/opt/local/bin/pkgin -y install ucarp")] = installed
    assert zlogin.pkg_install(UUID, "ucarp") == {"name": "ucarp", "version": "1.5.2", "changed": True}
    assert [argv[-1] for argv in zlogins(run)] == ["/opt/local/bin/pkgin -y install ucarp"]
