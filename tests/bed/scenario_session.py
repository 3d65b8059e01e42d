"""A test session that leaves a running test bed behind unless it cleans up.

Not collected on its own (no ``test_`` prefix): ``test_cleanup.py`` runs it in
a child pytest and then fails it, interrupts it or kills it.
"""

import json
import os
import signal
import time

import pytest
from support import recipe_gz, recipe_zone

pytestmark = pytest.mark.root

# A session started from a background job inherits SIGINT ignored, and Python
# then never raises KeyboardInterrupt: the parent test's Ctrl-C must arrive.
signal.signal(signal.SIGINT, signal.default_int_handler)


def test_scenario(bed):
    gz = recipe_gz(bed, "gz-leftover")
    uuid = gz.create(recipe_zone("leftover", "192.0.2.61"))
    bed.host("leftover-client", "192.0.2.202/24")
    gz.zlogin(uuid, "sleep 600 </dev/null >/dev/null 2>&1 &")
    record = {"id": bed.id, "lan": bed.lan, "base": bed.base, "hosts": list(bed.hosts), "init": gz.get(uuid)["pid"]}
    with open(os.environ["SCENARIO_REPORT"] + ".tmp", "w") as fh:
        json.dump(record, fh)
    os.rename(os.environ["SCENARIO_REPORT"] + ".tmp", os.environ["SCENARIO_REPORT"])
    if os.environ["SCENARIO_MODE"] == "fail":
        # Fail once the parent test has seen the bed (it creates the go file).
        go = os.environ["SCENARIO_REPORT"] + ".go"
        for _ in range(600):
            if os.path.exists(go):
                break
            time.sleep(0.1)
        pytest.fail("failing on purpose")
    time.sleep(120)  # waits to be interrupted by the parent test
