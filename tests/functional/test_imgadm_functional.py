"""The imgadm execution module and smartos_image states through ``salt-call
--local`` on a fresh hypervisor of the test bed (no image, the default source)."""

import json

import pytest
from support import IMAGE, UNKNOWN

pytestmark = pytest.mark.root

SOURCE = "https://images.smartos.org"


def test_a_fresh_hypervisor(salt_call):
    assert salt_call("imgadm.list") == {}
    assert salt_call("imgadm.installed", IMAGE) is False
    assert salt_call("imgadm.sources") == [SOURCE]
    assert salt_call("imgadm.sources", verbose=True) == {SOURCE: {"type": "imgapi"}}
    assert salt_call("imgadm.avail")[IMAGE] == "standard64@14.2.0 [2014-07-24T17:46:23Z]"


def test_smartos_image_present_predicts_imports_and_then_has_nothing_to_do(salt_call):
    predicted = salt_call("state.single", "smartos_image.present", IMAGE, test=True)
    (ret,) = predicted.values()
    assert ret["result"] is None and ret["changes"]["installed"] == {"old": False, "new": True}
    assert salt_call("imgadm.installed", IMAGE) is False  # test mode changed nothing
    (ret,) = salt_call("state.single", "smartos_image.present", IMAGE).values()
    assert (ret["result"], ret["comment"]) == (True, f"Image {IMAGE} imported")
    assert ret["changes"]["image"] == "standard64@14.2.0 [2014-07-24T17:46:23Z]"
    (ret,) = salt_call("state.single", "smartos_image.present", IMAGE).values()
    assert (ret["result"], ret["changes"], ret["comment"]) == (True, {}, f"Image {IMAGE} is installed")
    image = salt_call("imgadm.get", IMAGE)
    assert (image["manifest"]["name"], image["source"]) == ("standard64", SOURCE)
    assert salt_call("imgadm.import", IMAGE) == {IMAGE: "standard64@14.2.0 [2014-07-24T17:46:23Z]"}  # no-op


def test_an_image_no_source_has_fails_with_imgadms_message(salt_call):
    proc = salt_call.run("state.single", "smartos_image.present", UNKNOWN)
    (ret,) = json.loads(proc.stdout)["local"].values()
    assert ret["result"] is False and ret["changes"] == {}
    assert ret["comment"] == (
        f"Image {UNKNOWN} is not installed and could not be imported: imgadm import: error (ActiveImageNotFound): "
        f'an active image "{UNKNOWN}" was not found in image sources'
    )
    assert "error (ImageNotInstalled)" in salt_call.error("imgadm.get", UNKNOWN)
    assert "is not an image UUID" in salt_call.error("imgadm.import", "$(reboot)")


def test_sources_and_delete(salt_call):
    other = "1d05e788-5409-11eb-b12f-037bd7fee4ee"
    assert other in salt_call("imgadm.import", other)
    assert salt_call("imgadm.delete", other) == [other]
    assert salt_call("imgadm.source_delete", SOURCE) == []
    try:
        assert "error (NoSources): imgadm has no configured sources" in salt_call.error("imgadm.import", other)
    finally:
        assert salt_call("imgadm.source_add", SOURCE) == [SOURCE]
