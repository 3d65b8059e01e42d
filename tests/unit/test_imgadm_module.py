"""Unit tests of _modules/imgadm.py with canned imgadm results."""

import json

import pytest
from salt.exceptions import CommandExecutionError, SaltInvocationError
from support import IMAGE, FakeRun, load_salt_module

BASE = {
    "manifest": {
        "uuid": IMAGE,
        "name": "standard64",
        "version": "14.2.0",
        "os": "smartos",
        "description": "A SmartOS 64-bit image",
        "published_at": "2014-07-21T10:43:17Z",
        "public": True,
    },
    "zpool": "zones",
    "source": "https://images.example.org",
}
DOCKER_UUID = "a3c7d5d6-3e0c-2f1c-8a2b-4f6d9e0c1b2a"
DOCKER = {
    "manifest": {
        "uuid": DOCKER_UUID,
        "name": "docker-layer",
        "version": "1.0",
        "os": "linux",
        "published_at": "2020-01-01T00:00:00Z",
        "tags": {"docker:repo": "busybox", "docker:tag:latest": True},
    },
    "zpool": "zones",
    "source": "https://docker.io",
}
LAYER = {"manifest": {"uuid": "b1b1b1b1-0000-1111-2222-333333333333", "name": "docker-layer", "tags": {}}}


def ok(stdout="", stderr=""):
    return {"stdout": stdout, "stderr": stderr, "retcode": 0}


@pytest.fixture
def run():
    return FakeRun({("imgadm", "list", "-j"): ok(json.dumps([BASE, DOCKER, LAYER]))})


@pytest.fixture
def imgadm(run):
    return load_salt_module("_modules", "imgadm", salt={"cmd.run_all": run})


def test_virtual_says_why_it_refuses(imgadm, monkeypatch):
    monkeypatch.setattr(imgadm.salt.utils.path, "which", lambda name: None)
    assert imgadm.__virtual__() == (
        False,
        "imgadm: the imgadm command was not found (it exists in a SmartOS global zone)",
    )
    monkeypatch.setattr(imgadm.salt.utils.path, "which", lambda name: "/usr/sbin/imgadm")
    assert imgadm.__virtual__() == "imgadm"


def test_list_as_salts_own_module_showed_it(imgadm, run):
    assert imgadm.list_() == {
        IMAGE: "standard64@14.2.0 [2014-07-21T10:43:17Z]",
        DOCKER_UUID: "busybox:latest@1.0 [2020-01-01T00:00:00Z]",
    }
    verbose = imgadm.list_(verbose=True)
    assert verbose[IMAGE] == {
        "name": "standard64",
        "version": "14.2.0",
        "os": "smartos",
        "description": "A SmartOS 64-bit image",
        "published": "2014-07-21T10:43:17Z",
        "source": "https://images.example.org",
    }
    assert imgadm.installed(IMAGE) is True
    assert imgadm.installed("11111111-2222-3333-4444-555555555555") is False
    assert run.argvs() == [["imgadm", "list", "-j"]]  # one process for the run
    assert run.calls[0][1]["python_shell"] is False


def test_docker_names(imgadm):
    assert imgadm.docker_to_uuid(IMAGE) == IMAGE
    assert imgadm.docker_to_uuid("busybox:latest") == DOCKER_UUID
    assert imgadm.docker_to_uuid("busybox:old") is None
    assert imgadm.docker_to_uuid("$(reboot)") is None


def test_get_and_its_errors(imgadm, run):
    run.results[("imgadm", "get", IMAGE)] = ok(json.dumps(BASE))
    run.results[("imgadm", "get", DOCKER_UUID)] = ok(json.dumps(DOCKER))
    assert imgadm.get(IMAGE) == BASE
    assert imgadm.get("busybox:latest") == DOCKER
    unknown = "11111111-2222-3333-4444-555555555555"
    message = f'imgadm get: error (ImageNotInstalled): image "{unknown}" was not found on zpool "zones"'
    run.results[("imgadm", "get", unknown)] = {"stdout": "", "stderr": message, "retcode": 1}
    with pytest.raises(CommandExecutionError) as info:
        imgadm.get(unknown)
    assert str(info.value) == message
    with pytest.raises(CommandExecutionError, match="no installed docker image is busybox:old"):
        imgadm.get("busybox:old")


@pytest.mark.parametrize("hostile", ["$(reboot)", "x; rm -rf /", "../../etc", "-P", "", None, 42])
def test_hostile_names_run_nothing(imgadm, run, hostile):
    for call in (imgadm.get, imgadm.import_, imgadm.delete, imgadm.installed, imgadm.show):
        with pytest.raises(SaltInvocationError, match="imgadm: "):
            call(hostile)
    for source in (hostile, "http://x/;reboot", "ftp://images.example.org"):
        with pytest.raises(SaltInvocationError, match="not an image source URL"):
            imgadm.source_add(source)
    assert run.calls == []


def test_import_returns_the_image_and_drops_the_cache(imgadm, run):
    run.results[("imgadm", "import")] = ok(stdout=f"Imported image {IMAGE} (standard64@14.2.0)")
    run.results[("imgadm", "get", IMAGE)] = ok(json.dumps(BASE))
    imgadm.list_()
    assert imgadm.import_(IMAGE) == {IMAGE: "standard64@14.2.0 [2014-07-21T10:43:17Z]"}
    assert ["imgadm", "import", "-q", IMAGE] in run.argvs()
    imgadm.list_()
    assert run.argvs().count(["imgadm", "list", "-j"]) == 2


def test_import_failure_is_imgadms_message(imgadm, run):
    message = f'imgadm import: error (ActiveImageNotFound): an active image "{IMAGE}" was not found in image sources'
    run.results[("imgadm", "import")] = {"stdout": "", "stderr": message, "retcode": 1}
    with pytest.raises(CommandExecutionError) as info:
        imgadm.import_(IMAGE)
    assert str(info.value) == message
    run.results[("imgadm", "import")] = {"stdout": "", "stderr": "", "retcode": 3}
    with pytest.raises(CommandExecutionError, match="^imgadm import: failed with exit status 3$"):
        imgadm.import_(IMAGE)


def test_avail_lists_public_enabled_images(imgadm, run):
    hidden = {"manifest": dict(BASE["manifest"], uuid="c0c0c0c0-1111-2222-3333-444444444444", public=False)}
    disabled = {"manifest": dict(BASE["manifest"], uuid="d0d0d0d0-1111-2222-3333-444444444444", disabled=True)}
    other = {"manifest": dict(BASE["manifest"], uuid="e0e0e0e0-1111-2222-3333-444444444444", name="base64")}
    run.results[("imgadm", "avail", "-j")] = ok(json.dumps([BASE, hidden, disabled, other]))
    assert sorted(imgadm.avail()) == sorted([IMAGE, other["manifest"]["uuid"]])
    assert list(imgadm.avail("base")) == [other["manifest"]["uuid"]]


def test_sources(imgadm, run):
    run.results[("imgadm", "sources", "-j")] = ok(json.dumps([{"url": "https://images.example.org", "type": "imgapi"}]))
    run.results[("imgadm", "sources", "-a")] = ok()
    run.results[("imgadm", "sources", "-d")] = ok()
    assert imgadm.sources() == ["https://images.example.org"]
    assert imgadm.sources(verbose=True) == {"https://images.example.org": {"type": "imgapi"}}
    assert imgadm.source_add("https://docker.example.org", "docker") == ["https://images.example.org"]
    assert ["imgadm", "sources", "-a", "https://docker.example.org", "-t", "docker"] in run.argvs()
    imgadm.source_delete("https://docker.example.org")
    assert ["imgadm", "sources", "-d", "https://docker.example.org"] in run.argvs()
    with pytest.raises(SaltInvocationError, match="source_type is one of"):
        imgadm.source_add("https://images.example.org", "ftp")


def test_delete_returns_what_went(imgadm, run):
    run.results[("imgadm", "delete", IMAGE)] = ok(stdout=f"Deleted image {IMAGE}\n")
    assert imgadm.delete(IMAGE) == [IMAGE]
