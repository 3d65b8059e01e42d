"""Stand-alone tests of the simulated pkgin (SMARTOS_SIM_ZONEROOT=<tmp>)."""

import os
import subprocess
from pathlib import Path

import pytest

SIM = Path(__file__).resolve().parents[1] / "sim"
PKGIN = SIM / "bin" / "pkgin"


@pytest.fixture
def zone(tmp_path):
    return tmp_path


def pkgin(zone, *args, stdin=subprocess.DEVNULL):
    env = dict(os.environ, SMARTOS_SIM_ZONEROOT=str(zone))
    return subprocess.run(
        [str(PKGIN), *args], env=env, stdin=stdin, capture_output=True, text=True, timeout=60, check=False
    )


def installed(zone):
    dbdir = zone / "opt" / "local" / "pkg"
    if not dbdir.is_dir():
        return []
    return sorted(p.name for p in dbdir.iterdir() if (p / "+CONTENTS").is_file())


needs_ucarp = pytest.mark.skipif(not os.path.isfile("/usr/sbin/ucarp"), reason="needs Debian's /usr/sbin/ucarp")


@needs_ucarp
def test_install_ucarp(zone):
    proc = pkgin(zone, "-y", "install", "ucarp")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == "calculating dependencies...done."
    assert "2 packages to install:" in lines
    assert "  libpcap-1.10.4 ucarp-1.5.2" in lines
    assert "0 to remove, 0 to refresh, 0 to upgrade, 2 to install" in lines
    # Dependencies first, then the requested package.
    assert lines.index("[1/2] installing libpcap-1.10.4...") < lines.index("[2/2] installing ucarp-1.5.2...")
    assert "pkg_install warnings: 0, errors: 0" in lines
    assert installed(zone) == ["libpcap-1.10.4", "ucarp-1.5.2"]

    binary = zone / "opt" / "local" / "sbin" / "ucarp"
    assert binary.is_file() and os.access(binary, os.X_OK)
    run = subprocess.run([str(binary), "--help"], capture_output=True, text=True, timeout=10, check=False)
    assert "ucarp 1.5.2" in run.stdout + run.stderr

    # pkgsrc ships only the BSD example scripts: no SMF manifest, config or hooks.
    local = zone / "opt" / "local"
    assert sorted(p.name for p in (local / "share" / "examples" / "ucarp").iterdir()) == ["vip-down.sh", "vip-up.sh"]
    assert "alias" in (local / "share" / "examples" / "ucarp" / "vip-up.sh").read_text()
    assert not (local / "lib" / "svc").exists()
    assert not (local / "etc").exists()

    dbdir = local / "pkg"
    assert (dbdir / "libpcap-1.10.4" / "+INSTALLED_INFO").read_text() == "automatic=yes\n"
    assert not (dbdir / "ucarp-1.5.2" / "+INSTALLED_INFO").exists()
    assert (dbdir / "libpcap-1.10.4" / "+REQUIRED_BY").read_text().split() == ["ucarp-1.5.2"]
    assert "@pkgdep libpcap>=0.6.0" in (dbdir / "ucarp-1.5.2" / "+CONTENTS").read_text()


@needs_ucarp
def test_nothing_to_do(zone):
    assert pkgin(zone, "-y", "install", "ucarp").returncode == 0
    for name in ("ucarp", "ucarp-1.5.2", "ucarp-[0-9]*"):
        proc = pkgin(zone, "-y", "in", name)
        assert proc.returncode == 0
        assert proc.stdout == "calculating dependencies...done.\nnothing to do.\n"


@needs_ucarp
def test_install_by_full_name_and_glob(zone):
    proc = pkgin(zone, "-y", "in", "libpcap-1.10.4")
    assert proc.returncode == 0
    assert "1 package to install:\n  libpcap-1.10.4\n" in proc.stdout
    proc = pkgin(zone, "-y", "in", "ucarp-[0-9]*")
    assert proc.returncode == 0
    assert "1 package to install:\n  ucarp-1.5.2\n" in proc.stdout
    assert installed(zone) == ["libpcap-1.10.4", "ucarp-1.5.2"]


def test_unknown_package(zone):
    proc = pkgin(zone, "-y", "install", "nosuchpkg")
    assert proc.returncode == 1
    assert proc.stderr == "nosuchpkg is not available in the repository\n"
    assert "nothing to do." in proc.stdout
    assert installed(zone) == []


def test_unknown_among_known_installs_nothing(zone):
    proc = pkgin(zone, "-y", "install", "ucarp", "nosuchpkg")
    assert proc.returncode == 1
    assert "nosuchpkg is not available in the repository" in proc.stderr
    assert installed(zone) == []
    assert not (zone / "opt" / "local" / "sbin" / "ucarp").exists()


@needs_ucarp
def test_list_formats(zone):
    proc = pkgin(zone, "list")
    assert proc.returncode == 0
    assert proc.stdout == ""
    assert pkgin(zone, "-y", "install", "ucarp").returncode == 0
    proc = pkgin(zone, "list")
    assert proc.stdout.splitlines() == [
        "libpcap-1.10.4       System-independent interface for user-level packet capture",
        "ucarp-1.5.2          Common Address Redundancy Protocol (CARP) for Unix",
    ]
    proc = pkgin(zone, "-p", "ls")
    assert proc.stdout.splitlines() == [
        "libpcap-1.10.4;System-independent interface for user-level packet capture",
        "ucarp-1.5.2;Common Address Redundancy Protocol (CARP) for Unix",
    ]


@needs_ucarp
def test_avail_and_search(zone):
    avail = pkgin(zone, "-p", "avail").stdout.splitlines()
    assert "ucarp-1.5.2;Common Address Redundancy Protocol (CARP) for Unix" in avail
    assert len(avail) >= 4
    assert pkgin(zone, "-y", "in", "ucarp").returncode == 0
    proc = pkgin(zone, "search", "carp")
    assert proc.returncode == 0
    assert proc.stdout.splitlines()[0] == "ucarp-1.5.2 =        Common Address Redundancy Protocol (CARP) for Unix"
    assert "=: package is installed and up-to-date" in proc.stdout
    proc = pkgin(zone, "-p", "se", "^bash")
    assert proc.stdout.splitlines()[0] == "bash-completion-2.14.0;;Programmable completion specifications for bash"
    proc = pkgin(zone, "se", "zzznothing")
    assert proc.returncode == 1
    assert proc.stdout == "No results found for zzznothing\n"


@needs_ucarp
def test_remove(zone):
    assert pkgin(zone, "-y", "install", "ucarp").returncode == 0
    proc = pkgin(zone, "-y", "remove", "ucarp")
    assert proc.returncode == 0, proc.stderr
    assert "1 packages to delete: \n  ucarp-1.5.2\n" in proc.stdout
    assert "[1/1] removing ucarp-1.5.2..." in proc.stdout
    assert "pkg_install warnings: 0, errors: 0" in proc.stdout
    assert installed(zone) == ["libpcap-1.10.4"]
    assert not (zone / "opt" / "local" / "sbin" / "ucarp").exists()
    assert not (zone / "opt" / "local" / "share" / "examples" / "ucarp").exists()
    assert not (zone / "opt" / "local" / "pkg" / "libpcap-1.10.4" / "+REQUIRED_BY").exists()

    proc = pkgin(zone, "-y", "rm", "nosuchpkg")
    assert proc.returncode == 1
    assert proc.stdout == "no such installed package nosuchpkg\nno packages to delete\n"


@needs_ucarp
def test_remove_takes_reverse_dependencies(zone):
    assert pkgin(zone, "-y", "install", "ucarp").returncode == 0
    proc = pkgin(zone, "-y", "rm", "libpcap")
    assert proc.returncode == 0
    assert "2 packages to delete: \n  ucarp-1.5.2 libpcap-1.10.4\n" in proc.stdout
    assert installed(zone) == []


@needs_ucarp
def test_no_y_and_eof_aborts(zone):
    proc = pkgin(zone, "install", "ucarp")
    assert proc.stdout.endswith("proceed ? [Y/n] ")
    # pkgin's pkgin_install(): exit(rc) with rc still EXIT_SUCCESS.
    assert proc.returncode == 0
    assert installed(zone) == []

    env = dict(os.environ, SMARTOS_SIM_ZONEROOT=str(zone))
    proc = subprocess.run(
        [str(PKGIN), "in", "ucarp"], env=env, input="n\n", capture_output=True, text=True, timeout=60, check=False
    )
    assert proc.returncode == 0
    assert installed(zone) == []
    proc = subprocess.run(
        [str(PKGIN), "in", "ucarp"], env=env, input="\n", capture_output=True, text=True, timeout=60, check=False
    )
    assert proc.returncode == 0
    assert installed(zone) == ["libpcap-1.10.4", "ucarp-1.5.2"]

    proc = pkgin(zone, "rm", "ucarp")
    assert proc.stdout.endswith("proceed ? [Y/n] ")
    assert installed(zone) == ["libpcap-1.10.4", "ucarp-1.5.2"]


def test_usage_and_errors(zone):
    proc = pkgin(zone)
    assert proc.returncode == 1
    assert proc.stderr.startswith("Usage: pkgin ")
    proc = pkgin(zone, "frobnicate")
    assert proc.returncode == 1
    proc = pkgin(zone, "-y", "install")
    assert proc.returncode == 1
    assert proc.stderr == "pkgin: specify at least one package to install\n"
    proc = pkgin(zone, "-y", "rm", "ucarp")
    assert proc.returncode == 1
    assert proc.stderr == "pkgin: empty local package list.\n"
    proc = pkgin(zone, "se", "(")
    assert proc.returncode == 1
    assert proc.stderr.startswith("pkgin: regcomp: (")
    assert "Traceback" not in proc.stderr


def test_update(zone):
    proc = pkgin(zone, "update")
    assert proc.returncode == 0
    assert "is up-to-date" in proc.stdout


def test_missing_host_binary_is_a_clear_error(zone, monkeypatch, capsys):
    monkeypatch.syspath_prepend(str(SIM))
    monkeypatch.setenv("SMARTOS_SIM_ZONEROOT", str(zone))
    from smartos_sim import pkgin as module
    from smartos_sim import pkgsrc_catalog

    spec = pkgsrc_catalog.PACKAGES["ucarp"]["files"][0]
    monkeypatch.setitem(spec, "copy", str(zone / "no-such-ucarp"))
    assert module.main(["-y", "install", "ucarp"]) == 1
    captured = capsys.readouterr()
    assert "no-such-ucarp" in captured.err
    assert "ucarp" in captured.err
    assert installed(zone) == []
