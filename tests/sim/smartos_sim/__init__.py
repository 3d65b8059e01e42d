"""A simulator of the SmartOS command line on Linux (the project's test bed).

Each simulated global zone keeps its state under ``$SMARTOS_SIM_ROOT``; zones
are Linux namespaces held by a small init process; the daemons inside them
(ucarp above all) are real. Only the Python standard library is used, so the
tools run under any Python 3.11 on the machine, inside zones as well.
"""
