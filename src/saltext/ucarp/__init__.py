"""
The ucarp formula as a Salt extension.

``pip install`` of the project puts the formula's custom modules
(``_modules``, ``_states``, ``_beacons``, ``_engines``, ``_runners`` of the repository) and
its SLS tree in this package, and registers ``loader_dirs`` under the
``salt.loader`` entry point: Salt's loader then reads the modules, states,
beacon, engine and runner from here, with no ``saltutil.sync_all``. Salt's utils
loader ignores extensions, so the modules import the cluster model
(``utils/ucarp_model.py``) as plain Python.

The SLS are not modules: the master (or a masterless minion) serves them
from its ``file_roots``. ``python -m saltext.ucarp`` prints the folder to
add there.
"""

import os

PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))
LOADER_TYPES = ("modules", "states", "beacons", "engines", "runners")


def loader_dirs():
    """The folders of each Salt loader type this extension provides."""
    return {kind: [os.path.join(PACKAGE_DIR, kind)] for kind in LOADER_TYPES}


def file_roots():
    """The folder holding the formula's SLS (``ucarp/``) and reactor
    (``reactor/ucarp/``): an entry for the master's ``file_roots``."""
    return os.path.join(PACKAGE_DIR, "file_roots")
