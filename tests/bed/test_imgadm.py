"""Conformance of the simulated imgadm with SmartOS (smartos-live src/img).

A fresh hypervisor has no image and imgadm's default source; a zone's image
must be imported before ``vmadm create`` can use it. Messages are
``imgadm <command>: error (<Code>): <message>``; an image that is not
installed exits 3, every other failure 1.
"""

import json

import pytest
from support import IMAGE, UNKNOWN, recipe_zone

pytestmark = pytest.mark.root

SOURCE = "https://images.smartos.org"


@pytest.fixture(scope="module")
def gz(bed):
    return bed.gz("gz-imgadm")  # fresh: nothing imported


def test_a_fresh_hypervisor_has_no_image_and_the_default_source(gz):
    proc = gz.run("imgadm", "list")
    assert (proc.returncode, proc.stdout.split()) == (0, ["UUID", "NAME", "VERSION", "OS", "TYPE", "PUB"])
    assert json.loads(gz.run("imgadm", "list", "-j").stdout) == []
    assert gz.run("imgadm", "sources").stdout == f"{SOURCE}\n"
    assert json.loads(gz.run("imgadm", "sources", "-j").stdout) == [{"url": SOURCE, "type": "imgapi"}]
    offered = json.loads(gz.run("imgadm", "avail", "-j").stdout)
    assert IMAGE in [i["manifest"]["uuid"] for i in offered]


def test_create_needs_the_image_imported_first(gz):
    proc = gz.run("vmadm", "create", stdin=json.dumps(recipe_zone("early", "192.0.2.121")))
    assert (proc.returncode, proc.stderr.strip()) == (1, "Invalid value(s) for: image_uuid")
    proc = gz.run("imgadm", "get", IMAGE)
    assert proc.returncode == 3
    assert (
        proc.stderr.strip() == f'imgadm get: error (ImageNotInstalled): image "{IMAGE}" was not found on zpool "zones"'
    )


def test_import_then_create(gz):
    proc = gz.run("imgadm", "import", IMAGE)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == [
        f'Importing {IMAGE} (standard64@14.2.0) from "{SOURCE}"',
        f"Imported image {IMAGE} (standard64@14.2.0)",
    ]
    again = gz.run("imgadm", "import", IMAGE)
    assert (again.returncode, again.stdout.strip()) == (
        0,
        f"Image {IMAGE} (standard64 14.2.0) is already installed, skipping",
    )
    image = json.loads(gz.run("imgadm", "get", IMAGE).stdout)
    assert (image["manifest"]["name"], image["source"]) == ("standard64", SOURCE)
    row = gz.run("imgadm", "list", "-H").stdout.split()
    assert row == [IMAGE, "standard64", "14.2.0", "smartos", "zone-dataset", "2014-07-24"]
    uuid = gz.create(recipe_zone("late", "192.0.2.122"))
    proc = gz.run("imgadm", "delete", IMAGE)
    assert proc.returncode == 1
    assert (
        proc.stderr.strip()
        == f'imgadm delete: error (ImageHasDependentClones): image "{IMAGE}" has dependent clones: {uuid}'
    )
    gz.run("vmadm", "delete", uuid, check=True)


def test_import_of_an_unknown_image_and_with_no_source(gz):
    proc = gz.run("imgadm", "import", UNKNOWN)
    assert proc.returncode == 1
    assert proc.stderr.strip() == (
        f'imgadm import: error (ActiveImageNotFound): an active image "{UNKNOWN}" was not found in image sources'
    )
    proc = gz.run("imgadm", "import", "not-an-image")
    assert (proc.returncode, proc.stderr.strip()) == (
        1,
        'imgadm import: error (Usage): invalid image-id arg: "not-an-image"',
    )
    proc = gz.run("imgadm", "sources", "-d", SOURCE)
    assert (proc.returncode, proc.stdout.strip()) == (0, f'Deleted "imgapi" image source "{SOURCE}"')
    try:
        proc = gz.run("imgadm", "import", "1d05e788-5409-11eb-b12f-037bd7fee4ee")
        assert (proc.returncode, proc.stderr.strip()) == (
            1,
            "imgadm import: error (NoSources): imgadm has no configured sources",
        )
        assert gz.run("imgadm", "avail").returncode == 1
    finally:
        proc = gz.run("imgadm", "sources", "-a", SOURCE)
        assert (proc.returncode, proc.stdout.strip()) == (0, f'Added "imgapi" image source "{SOURCE}"')


def test_a_source_that_does_not_answer(gz):
    url = "https://images.example.invalid"
    proc = gz.run("imgadm", "sources", "-a", url)
    assert proc.returncode == 1
    assert proc.stderr.startswith(
        f'imgadm sources: error (SourcePing): unexpected ping error with image source "{url}"'
    )
    assert gz.run("imgadm", "sources", "-a", url, "-f").returncode == 0  # -f: no ping
    try:
        proc = gz.run("imgadm", "avail")
        assert proc.returncode == 1 and "SourcePing" in proc.stderr
    finally:
        assert gz.run("imgadm", "sources", "-d", url).returncode == 0
    assert gz.run("imgadm", "sources", "-d", url).stdout.strip() == f'Do not have image source "{url}", no change'


def test_delete_an_unused_image(gz):
    other = "1d05e788-5409-11eb-b12f-037bd7fee4ee"
    assert gz.run("imgadm", "import", "-q", other).returncode == 0
    proc = gz.run("imgadm", "delete", other)
    assert (proc.returncode, proc.stdout.strip()) == (0, f"Deleted image {other}")
    assert gz.run("imgadm", "get", other).returncode == 3
