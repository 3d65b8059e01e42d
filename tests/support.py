"""Small helpers for tests: bounded polling, never fixed sleeps."""

import importlib.util
import json
import os
import sys
import time


def wait_for(predicate, timeout=30.0, interval=0.1, what="condition"):
    """Poll ``predicate`` until it returns a truthy value; return that value.

    Fails the test with ``what`` and the last value seen when ``timeout``
    seconds pass first.  Bounded in time and in count.
    """
    deadline = time.monotonic() + timeout
    last = None
    for _ in range(int(timeout / interval) + 2):
        last = predicate()
        if last:
            return last
        if time.monotonic() >= deadline:
            break
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what} (last: {last!r})")


IMAGE = "d34c301e-10c3-11e4-9b79-5f67ca448df0"
UNKNOWN = "11111111-2222-3333-4444-555555555555"


def recipe_gz(bed, name):
    """A hypervisor of ``bed`` with the recipe's image imported from its image
    source: the recipe's first step (a fresh hypervisor has no image)."""
    gz = bed.gz(name)
    gz.import_image(IMAGE)
    return gz


def recipe_zone(alias, ip, **extra):
    """The original article's zone JSON (Listing 1), with TEST-NET-1 addresses."""
    payload = {
        "alias": alias,
        "hostname": alias,
        "brand": "joyent",
        "dns_domain": "",
        "dataset_uuid": IMAGE,
        "resolvers": ["192.0.2.53"],
        "max_physical_memory": 512,
        "nics": [
            {
                "nic_tag": "admin",
                "ip": ip,
                "netmask": "255.255.255.0",
                "gateway": "192.0.2.1",
                "primary": True,
            }
        ],
    }
    payload.update(extra)
    return payload


REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SALT_CALL = os.path.join(os.path.dirname(sys.executable), "salt-call")
# A minion's config for the formula's engine beside its beacon, read from the
# checkout (engines start with the minion, before any sync).
ENGINE = {"engines": [{"ucarp": {"interval": 0.1}}], "engines_dirs": [os.path.join(REPO, "_engines")]}


def formula_root(base):
    """A file root holding the formula's extension modules (symlinks into this
    repository), as an operator's would: serving the repository itself, with
    its virtualenvs, makes every highstate's module sync list its every file."""
    root = os.path.join(str(base), "formula")
    os.makedirs(root, exist_ok=True)
    for kind in ("_modules", "_states", "_utils", "_beacons", "_engines", "_runners"):
        if not os.path.lexists(os.path.join(root, kind)):
            os.symlink(os.path.join(REPO, kind), os.path.join(root, kind))
    return root


def formula_utils():
    """The formula's ``_utils`` as Salt's ``__utils__`` gives them (``"module.function"``)."""
    found = {}
    for filename in sorted(os.listdir(os.path.join(REPO, "_utils"))):
        if not filename.endswith(".py"):
            continue
        name = filename[:-3]
        spec = importlib.util.spec_from_file_location(f"formula_utils_{name}", os.path.join(REPO, "_utils", filename))
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        for attr, value in vars(module).items():
            if callable(value) and not attr.startswith("_") and getattr(value, "__module__", None) == module.__name__:
                found[f"{name}.{attr}"] = value
    return found


def load_salt_module(kind, name, salt=None, opts=None):
    """Load ``<kind>/<name>.py`` of the formula (e.g. ``_modules/vmadm.py``)
    as Salt would, with the dunders given here instead of Salt's loader."""
    path = os.path.join(REPO, kind, f"{name}.py")
    spec = importlib.util.spec_from_file_location(f"formula_{kind.strip('_')}_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.__salt__ = salt if salt is not None else {}
    module.__utils__ = formula_utils()
    module.__context__ = {}
    module.__opts__ = opts if opts is not None else {"test": False}
    module.__pillar__ = {}
    module.__grains__ = {}
    return module


class FakeRun:
    """A ``cmd.run_all`` stand-in that replays canned results and records calls.

    ``results`` maps a tuple prefix of the argv to a dict (``stdout``,
    ``stderr``, ``retcode``) or to a callable taking the call's kwargs.
    Unmatched commands fail the test.
    """

    def __init__(self, results=None):
        self.results = dict(results or {})
        self.calls = []

    def __call__(self, argv, **kwargs):
        self.calls.append((list(argv), kwargs))
        for prefix in sorted(self.results, key=len, reverse=True):
            if tuple(argv[: len(prefix)]) == prefix:
                result = self.results[prefix]
                result = result(argv, kwargs) if callable(result) else result
                return {"stdout": "", "stderr": "", "retcode": 0, "pid": 1, **result}
        raise AssertionError(f"unexpected command: {argv}")

    def argvs(self):
        return [argv for argv, _ in self.calls]


class Minion:
    """A masterless salt minion on one simulated global zone: by default the
    formula from this repository's file_roots, run by this Salt."""

    def __init__(self, gz, base, pillar_dir, salt_call=SALT_CALL, file_roots=None):
        self.gz = gz
        self.id = gz.name
        self.salt_call = salt_call
        self.cachedir = base / "root" / "var" / "cache" / "salt" / "minion"
        self.confdir = base / "conf"
        self.confdir.mkdir(parents=True)
        self.log = base / "root" / "minion.log"  # Salt puts paths under root_dir
        (self.confdir / "minion").write_text(
            json.dumps(
                {
                    "id": self.id,
                    "file_client": "local",
                    "root_dir": str(base / "root"),
                    "file_roots": {"base": file_roots or [os.path.join(REPO, "salt"), REPO]},
                    "pillar_roots": {"base": [str(pillar_dir)]},
                    "log_file": str(self.log),
                    "log_level_logfile": "debug",
                    "state_output": "mixed",
                }
            )
        )

    def run(self, fun, *args, timeout=600):
        argv = [self.salt_call, "--local", "-c", str(self.confdir), "--out=json", "--retcode-passthrough", fun, *args]
        return self.gz.run(*argv, timeout=timeout)

    def call(self, fun, *args):
        proc = self.run(fun, *args)
        assert proc.returncode == 0, f"{self.id}: salt-call {fun} failed: {proc.stdout}{proc.stderr}"
        return json.loads(proc.stdout)["local"]

    def apply(self, *args):
        """``state.apply`` and its per-state results (a failed state fails the test)."""
        proc = self.run("state.apply", *args)
        try:
            results = json.loads(proc.stdout)["local"]
        except (ValueError, KeyError):
            raise AssertionError(f"{self.id}: state.apply {args}: {proc.stdout}{proc.stderr}") from None
        assert isinstance(results, dict), f"{self.id}: state.apply {args}: {results}"
        failed = {k: v["comment"] for k, v in results.items() if v["result"] is False}
        assert not failed, f"{self.id}: failed states: {json.dumps(failed, indent=2)}"
        return results
