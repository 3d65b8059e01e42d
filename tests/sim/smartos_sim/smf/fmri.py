"""FMRI patterns as ``scf_walk_fmri`` accepts them: FMRIs, abbreviations, globs."""

from fnmatch import fnmatchcase

from . import repository

GLOB_CHARS = "*?["


def is_glob(pattern):
    return any(c in pattern for c in GLOB_CHARS)


def _svc_matches(sname, abbrev):
    return sname == abbrev or sname.endswith("/" + abbrev)


def match_instances(data, pattern):
    """Instance FMRIs (sorted) designated by ``pattern``."""
    found = []
    if is_glob(pattern):
        body = pattern
        if body.startswith("svc:"):
            cands = [body]
        else:
            body = body.lstrip("/")
            cands = ["svc:/" + body, "svc:/*/" + body]
        for fmri, sname, _iname in repository.instances(data):
            if any(fnmatchcase(fmri, c) or fnmatchcase("svc:/" + sname, c) for c in cands):
                found.append(fmri)
        return found
    if pattern.startswith("svc:"):
        if not pattern.startswith("svc:/"):
            return []
        sname, iname = repository.split_fmri(pattern)
        svc = data["services"].get(sname)
        if svc is None:
            return []
        if iname is None:
            return [f"svc:/{sname}:{i}" for i in sorted(svc["instances"])]
        return [pattern] if iname in svc["instances"] else []
    body = pattern.lstrip("/")
    if not body:
        return []
    for fmri, sname, iname in repository.instances(data):
        if ":" in body:
            sabbr, iabbr = body.rsplit(":", 1)
            if iname == iabbr and _svc_matches(sname, sabbr):
                found.append(fmri)
        elif _svc_matches(sname, body) or iname == body:
            found.append(fmri)
    return found


def match_entity(data, pattern, prefer_instances=False):
    """Services and instances designated by ``pattern`` (for svccfg -s, svcprop).

    A pattern with an instance part names instances.  Without one it names
    services, except that with ``prefer_instances`` (svcprop) an abbreviation
    that is not a full ``svc:/`` FMRI is first tried as an instance.
    """
    if prefer_instances and not pattern.startswith("svc:/") and ":" not in pattern:
        found = match_instances(data, pattern)
        if found:
            return found
    if pattern.startswith("svc:/") or pattern.startswith("/") or ":" in pattern:
        body = pattern[len("svc:/") :] if pattern.startswith("svc:/") else pattern.lstrip("/")
    else:
        body = pattern
    if ":" in body:
        return match_instances(data, pattern)
    exact = pattern.startswith("svc:/")
    out = []
    for sname in sorted(data["services"]):
        if (sname == body) if exact else _svc_matches(sname, body):
            out.append("svc:/" + sname)
    if not out and not exact:
        out = match_instances(data, pattern)
    return out
