"""Unit tests of _states/smartos_image.py with a fake imgadm execution module."""

from unittest.mock import MagicMock

import pytest
from salt.exceptions import CommandExecutionError
from support import IMAGE, load_salt_module

ABSENT = "11111111-2222-3333-4444-555555555555"


class FakeImgadm:
    def __init__(self, installed=(IMAGE,), users=()):
        self.installed_images = set(installed)
        self.users = list(users)
        self.import_ = MagicMock(side_effect=self._import)
        self.delete = MagicMock(side_effect=lambda uuid: self.installed_images.discard(uuid) or [uuid])

    def _import(self, uuid):
        self.installed_images.add(uuid)
        return {uuid: "base64@20.4.0 [2020-11-02T00:00:00Z]"}

    def salt(self):
        return {
            "imgadm.installed": lambda uuid: uuid in self.installed_images,
            "imgadm.import": self.import_,
            "imgadm.delete": self.delete,
            "vmadm.list": lambda search, order, keyed: list(self.users),
        }


@pytest.fixture(params=[False, True], ids=["run", "test"])
def test_mode(request):
    return request.param


def load(fake, test=False):
    return load_salt_module("_states", "smartos_image", salt=fake.salt(), opts={"test": test})


def test_virtual_needs_imgadm():
    assert load(FakeImgadm()).__virtual__() == "smartos_image"
    bare = load_salt_module("_states", "smartos_image", salt={})
    assert bare.__virtual__()[0] is False


def test_present_installed_is_a_no_op(test_mode):
    fake = FakeImgadm()
    ret = load(fake, test_mode).present(IMAGE)
    assert (ret["result"], ret["changes"]) == (True, {})
    fake.import_.assert_not_called()


def test_present_imports_a_missing_image(test_mode):
    fake = FakeImgadm()
    ret = load(fake, test_mode).present(ABSENT)
    assert ret["changes"]["installed"] == {"old": False, "new": True}
    if test_mode:
        assert ret["result"] is None and "would be imported" in ret["comment"]
        fake.import_.assert_not_called()
    else:
        assert ret["result"] is True and ret["comment"] == f"Image {ABSENT} imported"
        fake.import_.assert_called_once_with(ABSENT)
        assert ABSENT in fake.installed_images


def test_present_failure_names_the_image_and_the_sources_answer():
    fake = FakeImgadm()
    message = f'imgadm import: error (ActiveImageNotFound): an active image "{ABSENT}" was not found in image sources'
    fake.import_.side_effect = CommandExecutionError(message)
    ret = load(fake).present(ABSENT)
    assert ret["result"] is False and ret["changes"] == {}
    assert ret["comment"] == f"Image {ABSENT} is not installed and could not be imported: {message}"


def test_absent(test_mode):
    fake = FakeImgadm()
    ret = load(fake, test_mode).absent(IMAGE)
    assert ret["changes"] == {"installed": {"old": True, "new": False}}
    assert ret["result"] is (None if test_mode else True)
    assert (IMAGE in fake.installed_images) is test_mode
    assert load(fake).absent(ABSENT)["comment"] == f"Image {ABSENT} is not installed"


def test_absent_refuses_an_image_in_use():
    fake = FakeImgadm(users=["web-a", ""])
    ret = load(fake).absent(IMAGE)
    assert ret["result"] is False and ret["comment"] == f"Image {IMAGE} is used by 2 VM(s) (web-a, -)"
    fake.delete.assert_not_called()
