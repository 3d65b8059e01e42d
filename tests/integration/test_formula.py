"""The formula applied with ``state.apply ucarp`` on two simulated hypervisors.

Two clusters, one zone of each on each hypervisor: zones created with the
right NICs, ucarp instances online, exactly one holder per VIP, reachable
from a client; idempotence, test mode, a running cluster's new password
or VIP refused, an option change applied in place, removal with ``ucarp.clean``, bad pillar, and the password kept
out of every place it must not be.
"""

import concurrent.futures
import copy
import json
import os
import re
import stat

import pytest
from support import wait_for

pytestmark = [pytest.mark.root, pytest.mark.matrix]

CLUSTERS = {
    "web": {
        "vip": "192.0.2.100",
        "vhid": 101,
        "password": "web-Secret-1",
        "nodes": {"web-a": {"host": "gz1", "ip": "192.0.2.11"}, "web-b": {"host": "gz2", "ip": "192.0.2.12"}},
    },
    "db": {
        "vip": "192.0.2.110",
        "vhid": 102,
        "password": "db-Secret-1",
        "nodes": {"db-a": {"host": "gz1", "ip": "192.0.2.21"}, "db-b": {"host": "gz2", "ip": "192.0.2.22"}},
    },
}
PASSWORDS = ("web-Secret-1", "web-Secret-2", "db-Secret-1")


def on_every_minion(minions, fn):
    """``fn(minion)`` on every hypervisor at once, as ``salt 'gz*'`` does; by minion name."""
    with concurrent.futures.ThreadPoolExecutor(len(minions)) as pool:
        futures = {name: pool.submit(fn, minion) for name, minion in minions.items()}
        return {name: future.result() for name, future in futures.items()}


def apply_all(minions, *args):
    return on_every_minion(minions, lambda minion: minion.apply(*args))


def changed(results):
    return {r["__id__"]: r["changes"] for per in results.values() for r in per.values() if r["changes"]}


def node_zone(minions, alias):
    node = next(c["nodes"][alias] for c in CLUSTERS.values() if alias in c["nodes"])
    return minions[node["host"]].gz, alias


def uuid_of(gz, alias):
    return gz.run("vmadm", "lookup", "-1", f"alias={alias}", check=True).stdout.strip()


def holders(minions, cluster):
    vip = CLUSTERS[cluster]["vip"]
    found = []
    for alias in CLUSTERS[cluster]["nodes"]:
        gz, _ = node_zone(minions, alias)
        out = gz.zlogin(uuid_of(gz, alias), "/usr/sbin/ifconfig -a").stdout
        if f"inet {vip} " in out:
            found.append(alias)
    return found


def ucarp_pid(minions, alias, cluster):
    """The PID of the instance's ucarp, or None while there is not exactly one:
    a hand-over's listener (a ucarp whose up hook is peer-master) is not it."""
    gz, _ = node_zone(minions, alias)
    uuid = uuid_of(gz, alias)
    out = gz.zlogin(uuid, f"svcs -Hp svc:/network/ucarp:{cluster}").stdout
    pids = re.findall(r"\s(\d+) ucarp$", out, re.M)
    own = [p for p in pids if "peer-master" not in gz.zlogin(uuid, f"tr '\\0' ' ' < /proc/{p}/cmdline").stdout]
    return own[0] if len(own) == 1 and len(pids) == 1 else None


def svc_state(minions, alias, cluster):
    gz, _ = node_zone(minions, alias)
    return gz.zlogin(uuid_of(gz, alias), f"svcs -H -o state svc:/network/ucarp:{cluster}").stdout.strip()


@pytest.fixture(scope="module")
def client(bed):
    return bed.host("client", "192.0.2.200/24")


@pytest.fixture(scope="module")
def applied(minions, set_pillar, client):
    set_pillar(CLUSTERS)
    return apply_all(minions, "ucarp")


def test_zones_exist_with_least_privilege_nics(minions, applied):
    for cluster in CLUSTERS.values():
        for alias, node in cluster["nodes"].items():
            gz = minions[node["host"]].gz
            vm = gz.get(uuid_of(gz, alias))
            assert vm["state"] == "running"
            (nic,) = vm["nics"]
            assert nic["ip"] == node["ip"]
            assert nic["allowed_ips"] == [cluster["vip"]]
            assert nic["allow_mac_spoofing"] is True
            assert not nic.get("allow_ip_spoofing")


def test_instances_online_and_one_master_per_vip(bed, minions, applied, client):
    for name, cluster in CLUSTERS.items():
        for alias in cluster["nodes"]:
            assert svc_state(minions, alias, name) == "online"
        wait_for(lambda n=name: len(holders(minions, n)) == 1, timeout=30, what=f"one master of {name}")
        vip = cluster["vip"]
        wait_for(
            lambda v=vip: bed.in_host(client, "ping", "-c", "1", "-W", "1", v).returncode == 0,
            timeout=30,
            what=f"{vip} answering the client",
        )


def test_a_backup_starting_again_records_no_transition(minions, applied):
    """ucarp runs its down hook each time it starts: a backup that starts
    again has not changed role, and the hook records nothing."""
    found = wait_for(lambda: (h := holders(minions, "db")) and len(h) == 1 and h, timeout=30, what="one master of db")
    (backup,) = [a for a in CLUSTERS["db"]["nodes"] if a not in found]
    gz, _ = node_zone(minions, backup)
    uuid = uuid_of(gz, backup)

    def records():
        return gz.zlogin(uuid, "cat /var/db/ucarp/db.transitions").stdout.splitlines()

    last_role = lambda: (records() or ["- - none"])[-1].split()[2]  # noqa: E731
    wait_for(lambda: last_role() == "backup", timeout=30, what=f"{backup} recorded as backup")
    before = records()
    hook = gz.zlogin(uuid, "/opt/local/lib/ucarp/vip-down net0 192.0.2.110 db:102:255.255.255.0")
    assert hook.returncode == 0, hook.stderr
    assert records() == before


def test_second_apply_changes_nothing(minions, applied):
    assert changed(apply_all(minions, "ucarp")) == {}


def test_test_mode_predicts_and_changes_nothing(minions, set_pillar, applied):
    new = copy.deepcopy(CLUSTERS)
    new["web"]["deadratio"] = 4
    set_pillar(new)
    try:
        before = {alias: ucarp_pid(minions, alias, "web") for alias in CLUSTERS["web"]["nodes"]}
        predicted = changed(apply_all(minions, "ucarp", "test=True"))
        assert set(predicted) == {
            "ucarp-config-file-managed-web-web-a",
            "ucarp-config-file-managed-web-web-b",
            "ucarp-service-refreshed-web-web-a",
            "ucarp-service-refreshed-web-web-b",
        }
        assert predicted["ucarp-service-refreshed-web-web-a"] == {"refreshed": True}
        after = {alias: ucarp_pid(minions, alias, "web") for alias in CLUSTERS["web"]["nodes"]}
        assert after == before  # nothing restarted
    finally:
        set_pillar(CLUSTERS)
    assert changed(apply_all(minions, "ucarp")) == {}  # and nothing was written


def test_a_hook_change_restarts_nothing_an_agent_change_restarts_its_zone(minions, applied):
    """ucarp runs vip-hook afresh at each transition: rewriting it must not
    restart ucarp (a restart of the master would move its VIP).  The agent
    runs for the instance's life: its change restarts the zone's instances."""
    found = wait_for(lambda: (h := holders(minions, "db")) and len(h) == 1 and h, timeout=30, what="one master of db")
    (backup,) = [a for a in CLUSTERS["db"]["nodes"] if a not in found]
    gz, _ = node_zone(minions, backup)
    uuid = uuid_of(gz, backup)
    pids = {(a, c): ucarp_pid(minions, a, c) for c, cl in CLUSTERS.items() for a in cl["nodes"]}
    assert gz.zlogin(uuid, "echo '# edited by hand' >> /opt/local/lib/ucarp/vip-hook").returncode == 0
    assert set(changed(apply_all(minions, "ucarp"))) == {f"ucarp-hook-files-managed-{backup}"}
    assert {k: ucarp_pid(minions, *k) for k in pids} == pids
    assert gz.zlogin(uuid, "echo '# edited by hand' >> /opt/local/lib/ucarp/ucarp-agent").returncode == 0
    assert set(changed(apply_all(minions, "ucarp"))) == {
        f"ucarp-method-files-managed-{backup}",
        f"ucarp-service-running-db-{backup}",
    }
    wait_for(lambda: svc_state(minions, backup, "db") == "online", timeout=60, what=f"db in {backup} online")
    after = wait_for(lambda: ucarp_pid(minions, backup, "db"), timeout=60, what=f"ucarp of db in {backup}")
    assert after != pids[backup, "db"]
    assert {k: ucarp_pid(minions, *k) for k in pids if k != (backup, "db")} == {
        k: v for k, v in pids.items() if k != (backup, "db")
    }


def raw_apply(minions, *args):
    """``state.apply`` on every minion, its per-state results by ID, failed or not."""
    procs = on_every_minion(minions, lambda minion: minion.run("state.apply", *args))
    return {name: {r["__id__"]: r for r in json.loads(p.stdout)["local"].values()} for name, p in procs.items()}


def test_a_running_clusters_new_password_is_refused_and_nothing_written(minions, set_pillar, applied):
    """Node by node, a new password makes two masters (neither hears the
    other): a highstate refuses it, names the rollout, writes nothing and
    restarts nothing; that zone's states wait. The other cluster applies
    as usual."""
    pids = {(a, c): ucarp_pid(minions, a, c) for c, cl in CLUSTERS.items() for a in cl["nodes"]}
    new = copy.deepcopy(CLUSTERS)
    new["web"]["password"] = "web-Secret-2"
    set_pillar(new)
    try:
        results = raw_apply(minions, "ucarp")
    finally:
        set_pillar(CLUSTERS)
    for host, alias in (("gz1", "web-a"), ("gz2", "web-b")):
        guard = results[host][f"ucarp-identity-kept-web-{alias}"]
        assert guard["result"] is False
        assert f"Cluster web runs in zone {alias} and its password would change here alone" in guard["comment"]
        assert "salt-run ucarp.rollout web" in guard["comment"]
        for sid in (f"ucarp-passfile-managed-web-{alias}", f"ucarp-config-file-managed-web-{alias}"):
            assert results[host][sid]["result"] is False and results[host][sid]["changes"] == {}
        # The guard comes before the zone: that zone's states wait, the other cluster's apply.
        failed = sorted(sid for sid, r in results[host].items() if r["result"] is False)
        assert f"ucarp-zone-present-{alias}" in failed
        assert all(alias in sid for sid in failed), failed
        gz, _ = node_zone(minions, alias)
        assert gz.zlogin(uuid_of(gz, alias), "cat /opt/local/etc/ucarp/web.pass").stdout.strip() == "web-Secret-1"
    for per in results.values():
        for r in per.values():
            assert "web-Secret" not in json.dumps(r)
    assert {k: ucarp_pid(minions, *k) for k in pids} == pids
    assert changed(apply_all(minions, "ucarp")) == {}


def test_a_new_vip_is_refused_as_a_new_cluster(minions, set_pillar, applied):
    new = copy.deepcopy(CLUSTERS)
    new["db"]["vip"] = "192.0.2.111"
    set_pillar(new)
    try:
        results = raw_apply(minions, "ucarp")
    finally:
        set_pillar(CLUSTERS)
    guard = results["gz1"]["ucarp-identity-kept-db-db-a"]
    assert guard["result"] is False
    assert "its VIP would change here alone" in guard["comment"]
    assert "Moving to a new VIP or VHID" in guard["comment"]
    zone = results["gz1"]["ucarp-zone-present-db-a"]  # the guard runs first: allowed_ips keeps the running VIP
    assert zone["result"] is False and zone["changes"] == {}
    gz, _ = node_zone(minions, "db-a")
    assert "--addr=192.0.2.110" in gz.zlogin(uuid_of(gz, "db-a"), "cat /opt/local/etc/ucarp/db.conf").stdout
    assert changed(apply_all(minions, "ucarp")) == {}


def test_an_option_change_refreshes_and_hands_over_without_a_second_master(minions, set_pillar, applied):
    """A timing change is applied in place: the files are written and each
    instance refreshed; its agent restarts ucarp on the new options, the
    master handing its VIP over first. The other cluster is untouched, and
    the VIP always has exactly one holder but for the hand-over's overlap."""
    wait_for(lambda: len(holders(minions, "web")) == 1, timeout=30, what="one master of web")
    web_before = {alias: ucarp_pid(minions, alias, "web") for alias in CLUSTERS["web"]["nodes"]}
    db_before = {alias: ucarp_pid(minions, alias, "db") for alias in CLUSTERS["db"]["nodes"]}
    CLUSTERS["web"]["deadratio"] = 4  # the pillar the next tests start from
    set_pillar(CLUSTERS)
    ids = set(changed(apply_all(minions, "ucarp")))
    assert ids == {
        "ucarp-config-file-managed-web-web-a",
        "ucarp-config-file-managed-web-web-b",
        "ucarp-service-refreshed-web-web-a",
        "ucarp-service-refreshed-web-web-b",
    }
    for alias, pid in web_before.items():
        gz, _ = node_zone(minions, alias)
        assert "--deadratio=4" in gz.zlogin(uuid_of(gz, alias), "cat /opt/local/etc/ucarp/web.conf").stdout
        assert svc_state(minions, alias, "web") == "online"  # refreshed, never stopped
        wait_for(lambda a=alias, p=pid: ucarp_pid(minions, a, "web") not in (None, p), what=f"{alias}'s new ucarp")
    assert {alias: ucarp_pid(minions, alias, "db") for alias in CLUSTERS["db"]["nodes"]} == db_before
    wait_for(lambda: len(holders(minions, "web")) == 1, timeout=60, what="one master of web again")
    assert changed(apply_all(minions, "ucarp")) == {}


def test_password_stays_secret(minions, applied):
    for name, minion in minions.items():
        log = minion.log.read_text()
        for text in PASSWORDS:
            assert text not in log, f"{name}: password in the minion log"
    # Not on any command line: ucarp reads it from its passfile.
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as fh:
                cmdline = fh.read().decode(errors="replace")
        except OSError:
            continue
        assert not any(text in cmdline for text in PASSWORDS), cmdline
    # Only in 0600 files: the passfiles inside the zones; nowhere in the
    # minions' own files (caches, logs).
    for minion in minions.values():
        for top, _dirs, files in [*os.walk(minion.gz.root), *os.walk(minion.confdir.parent)]:
            for fname in files:
                path = os.path.join(top, fname)
                if os.path.islink(path) or not os.path.isfile(path):
                    continue
                with open(path, "rb") as fh:
                    data = fh.read()
                if any(text.encode() in data for text in PASSWORDS):
                    assert path.endswith(".pass"), path
                    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600, path


def test_clean_removes_a_cluster_and_leaves_the_other(minions, set_pillar, applied):
    # Each web node on its one ucarp (an earlier test's hand-over has ended).
    web_before = {
        alias: wait_for(lambda a=alias: ucarp_pid(minions, a, "web"), timeout=150, what=f"{alias}'s one ucarp")
        for alias in CLUSTERS["web"]["nodes"]
    }
    set_pillar({"web": CLUSTERS["web"]})
    try:
        results = apply_all(minions, "ucarp.clean")
        assert set(changed(results)) == {"ucarp-clean-pruned"}
        for alias in CLUSTERS["db"]["nodes"]:
            gz, _ = node_zone(minions, alias)
            uuid = uuid_of(gz, alias)
            assert gz.zlogin(uuid, "svcs svc:/network/ucarp:db").returncode == 1
            assert gz.zlogin(uuid, "ls /opt/local/etc/ucarp/").stdout.strip() == ""
            assert gz.zlogin(uuid, "ls /opt/local/lib/ucarp/ 2>/dev/null").stdout.strip() == ""
            assert gz.zlogin(uuid, "/usr/sbin/ifconfig -a").stdout.count("inet 192.0.2.110 ") == 0
        assert {alias: ucarp_pid(minions, alias, "web") for alias in CLUSTERS["web"]["nodes"]} == web_before
        assert changed(apply_all(minions, "ucarp.clean")) == {}
        assert changed(apply_all(minions, "ucarp")) == {}
    finally:
        set_pillar(CLUSTERS)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda p: p["web"].update(vhid=300), "ucarp:clusters:web:vhid: must be an integer from 1 to 255"),
        (lambda p: p["db"].update(vhid=101), "ucarp:clusters:web:vhid: 101 is already used by cluster db"),
        (lambda p: p["web"].update(password="p" * 20), "ucarp:clusters:web:password: is 20 bytes long"),
        (lambda p: p["web"]["nodes"].pop("web-b"), "ucarp:clusters:web:nodes: a cluster needs at least two nodes"),
    ],
)
def test_bad_pillar_applies_nothing(minions, set_pillar, applied, change, message):
    bad = copy.deepcopy(CLUSTERS)
    bad["new"] = {
        "vip": "192.0.2.120",
        "vhid": 103,
        "password": "x",
        "nodes": {"new-a": {"host": "gz1", "ip": "192.0.2.31"}, "new-b": {"host": "gz2", "ip": "192.0.2.32"}},
    }
    change(bad)
    set_pillar(bad)
    try:
        proc = minions["gz1"].run("state.apply", "ucarp")
        assert proc.returncode != 0
        assert message in proc.stdout + proc.stderr
        assert minions["gz1"].gz.run("vmadm", "lookup", "alias=new-a").stdout == ""  # nothing half-applied
        # A pipeline gates on the exit status: validate and plan exit 1 and say why.
        validate = minions["gz1"].run("ucarp.validate")
        assert validate.returncode == 1
        assert message in "\n".join(json.loads(validate.stdout)["local"])
        plan = minions["gz1"].run("ucarp.plan")
        assert plan.returncode == 1
        assert message in plan.stdout + plan.stderr
    finally:
        set_pillar(CLUSTERS)


def test_an_image_no_source_has_stops_its_zone_and_nothing_else(minions, set_pillar, applied):
    """A zone whose image cannot be imported is not created, and nothing is
    done in it; the state names the image and imgadm's answer. The zones
    that have their image go on as before."""
    missing = "11111111-2222-3333-4444-555555555555"
    extra = copy.deepcopy(CLUSTERS)
    extra["new"] = {
        "vip": "192.0.2.120",
        "vhid": 103,
        "password": "new-Secret-1",
        "zone": {"image_uuid": missing},
        "nodes": {"new-a": {"host": "gz1", "ip": "192.0.2.31"}, "new-b": {"host": "gz2", "ip": "192.0.2.32"}},
    }
    set_pillar(extra)
    try:
        proc = minions["gz1"].run("state.apply", "ucarp")
        assert proc.returncode != 0
        results = {r["__id__"]: r for r in json.loads(proc.stdout)["local"].values()}
        image = results[f"ucarp-image-present-{missing}"]
        assert image["result"] is False
        assert image["comment"] == (
            f"Image {missing} is not installed and could not be imported: imgadm import: error "
            f'(ActiveImageNotFound): an active image "{missing}" was not found in image sources'
        )
        failed = sorted(i for i, r in results.items() if r["result"] is False)
        assert all("new-a" in i or i == f"ucarp-image-present-{missing}" for i in failed), failed
        assert "One or more requisite failed" in results["ucarp-zone-present-new-a"]["comment"]
        assert minions["gz1"].gz.run("vmadm", "lookup", "alias=new-a").stdout == ""
        assert all(r["result"] is True for i, r in results.items() if "new-a" not in i and missing not in i)
    finally:
        set_pillar(CLUSTERS)


def test_files_a_zone_plants_are_refused_and_put_right_through_zlogin(minions, applied):
    """A zone owns its files: a symlink to one of the global zone's files, a
    FIFO and a huge file where the formula keeps its own are never followed,
    opened or taken whole from the global zone's side. Each is read through
    zlogin instead (the state says so), put right by a write through zlogin,
    and nothing outside the zone changes."""
    gz, _ = node_zone(minions, "db-b")
    uuid = uuid_of(gz, "db-b")
    with open("/etc/hostname", "rb") as fh:
        host_file = fh.read()
    plant = (
        "ln -sf /etc/hostname /opt/local/etc/ucarp/db.conf"
        " && mkfifo /opt/local/etc/ucarp/db.checks"
        " && dd if=/dev/zero of=/opt/local/lib/ucarp/vip-hook bs=1024 count=1100 2>/dev/null"
    )
    assert gz.zlogin(uuid, plant).returncode == 0
    results = raw_apply(minions, "ucarp")
    ours = results[CLUSTERS["db"]["nodes"]["db-b"]["host"]]
    conf, hook = ours["ucarp-config-file-managed-db-db-b"], ours["ucarp-hook-files-managed-db-b"]
    checks = ours["ucarp-checks-file-absent-db-db-b"]
    assert all(r["result"] is True for per in results.values() for r in per.values())
    assert "not read from the global zone" in conf["comment"] and "symbolic link" in conf["comment"]
    assert "not read from the global zone" in hook["comment"] and "bytes" in hook["comment"]
    assert conf["changes"] and hook["changes"]
    assert checks["changes"] == {"removed": {"old": checks["name"], "new": None}}
    for path in ("/opt/local/etc/ucarp/db.conf", "/opt/local/lib/ucarp/vip-hook"):
        assert gz.zlogin(uuid, f"test -f {path} && ! test -L {path}").returncode == 0, path
    assert gz.zlogin(uuid, "test -e /opt/local/etc/ucarp/db.checks").returncode == 1
    with open("/etc/hostname", "rb") as fh:
        assert fh.read() == host_file
    assert changed(apply_all(minions, "ucarp")) == {}


def test_a_zone_that_stops_halfway_fails_its_own_states_and_the_others_are_applied(minions, sls_dir, applied):
    """A zone stops in the middle of a highstate, after the run's one VM
    list and SMF snapshot said it runs: each of its states from then on
    fails, naming the reason, rather than trusting what the run read before;
    the other zone's states are applied. Once the zone runs again, the next
    apply puts it right and its cluster has one master."""
    gz = minions["gz1"].gz
    uuids = {alias: uuid_of(gz, alias) for alias in ("web-a", "db-a")}
    for uuid in uuids.values():  # a change for the run to make in both zones
        assert gz.zlogin(uuid, "echo '# changed by hand' >> /opt/local/lib/ucarp/vip-up").returncode == 0
    (sls_dir / "midway.sls").write_text(
        "include:\n  - ucarp\n\n"
        "stop-db-a-midway:\n"
        "  cmd.run:\n"
        f"    - name: vmadm stop -F {uuids['db-a']}\n"  # unbeknownst to the run's modules
        "    - require:\n      - zone_file: ucarp-hook-files-managed-web-a\n"
        "    - require_in:\n      - zone_file: ucarp-hook-files-managed-db-a\n"
    )
    try:
        proc = minions["gz1"].run("state.apply", "midway")
        assert proc.returncode != 0
        results = sorted(json.loads(proc.stdout)["local"].values(), key=lambda r: r["__run_num__"])
        halted_at = next(r["__run_num__"] for r in results if r["__id__"] == "stop-db-a-midway")
        after = [r for r in results if r["__run_num__"] > halted_at and "db-a" in r["__id__"]]
        assert after and all(r["result"] is False for r in after), [(r["__id__"], r["result"]) for r in after]
        hook = next(r for r in after if r["__id__"] == "ucarp-hook-files-managed-db-a")
        assert "login allowed only to running zones" in hook["comment"], hook["comment"]
        for r in after:
            assert "login allowed only to running zones" in r["comment"] or "requisite failed" in r["comment"], r
        others = [r for r in results if r not in after]
        assert all(r["result"] is True for r in others), [r["__id__"] for r in others if r["result"] is not True]
        web_hook = next(r for r in results if r["__id__"] == "ucarp-hook-files-managed-web-a")
        assert web_hook["changes"]  # put right before the halt
        assert "changed by hand" not in gz.zlogin(uuids["web-a"], "cat /opt/local/lib/ucarp/vip-up").stdout
    finally:
        (sls_dir / "midway.sls").unlink()
        gz.run("vmadm", "start", uuids["db-a"])
    assert changed({"gz1": minions["gz1"].apply("ucarp")})  # db-a's hook written now
    assert "changed by hand" not in gz.zlogin(uuids["db-a"], "cat /opt/local/lib/ucarp/vip-up").stdout
    wait_for(lambda: len(holders(minions, "db")) == 1, timeout=60, what="one master of db")
    assert changed(apply_all(minions, "ucarp")) == {}
