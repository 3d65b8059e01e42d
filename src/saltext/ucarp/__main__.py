"""``python -m saltext.ucarp``: where the installed formula's SLS are.

Prints the folder to add to the master's ``file_roots`` (or a masterless
minion's), and with ``--config`` a ``file_roots`` snippet for it.
"""

import argparse

from saltext.ucarp import file_roots


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m saltext.ucarp", description=__doc__.splitlines()[0])
    parser.add_argument("--config", action="store_true", help="print a file_roots snippet for the master's config")
    args = parser.parse_args(argv)
    if args.config:
        print(f"file_roots:\n  base:\n    - /srv/salt\n    - {file_roots()}")
    else:
        print(file_roots())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
