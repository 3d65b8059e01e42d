"""Reading SMF service bundles (manifests) as ``svccfg import`` does.

The document is parsed with expat (no external DTD is fetched), checked
against the service_bundle DTD rules (``dtd.py``) and turned into::

    {"name": ..., "services": [{"name": "network/ucarp", "pgs": {...},
      "instances": {"web": {"enabled": False, "pgs": {...}}},
      "dependents": [{"target": fmri, "name": ..., "pg": {...}}]}]}
"""

import os
import re
import xml.parsers.expat

from .dtd import DTD_PATH, validate
from .repository import prop


class ManifestError(Exception):
    """Import/validate failure: ``lines`` go to stderr as they are."""

    def __init__(self, *lines):
        super().__init__("\n".join(lines))
        self.lines = list(lines)


class Node:
    def __init__(self, tag, attrib, line):
        self.tag = tag
        self.attrib = attrib
        self.line = line
        self.children = []
        self.text = ""

    def find(self, tag):
        return next((c for c in self.children if c.tag == tag), None)

    def findall(self, tag):
        return [c for c in self.children if c.tag == tag]


def _parse(filename):
    try:
        with open(filename, "rb") as fh:
            raw = fh.read()
    except OSError as exc:
        raise ManifestError(f"svccfg: unable to open file: {exc.strerror}") from None
    parser = xml.parsers.expat.ParserCreate()
    parser.SetParamEntityParsing(xml.parsers.expat.XML_PARAM_ENTITY_PARSING_NEVER)
    stack, root, doctype = [], [None], {}

    def start(tag, attrs):
        node = Node(tag, attrs, parser.CurrentLineNumber)
        if stack:
            stack[-1].children.append(node)
        else:
            root[0] = node
        stack.append(node)

    def end(_tag):
        stack.pop()

    def chars(data):
        if stack:
            stack[-1].text += data

    def doctype_decl(name, sysid, _pubid, _internal):
        doctype.update(name=name, sysid=sysid)

    parser.StartElementHandler = start
    parser.EndElementHandler = end
    parser.CharacterDataHandler = chars
    parser.StartDoctypeDeclHandler = doctype_decl
    try:
        parser.Parse(raw, True)
    except xml.parsers.expat.ExpatError as exc:
        raise ManifestError(
            f"{filename}:{exc.lineno}: parser error : {xml.parsers.expat.ErrorString(exc.code)}",
            "svccfg: couldn't parse document",
        ) from None
    if not doctype:
        raise ManifestError("svccfg: document has no DTD")
    if doctype.get("sysid") != DTD_PATH:
        raise ManifestError("svccfg: document DTD unknown; not service bundle?")
    if root[0] is None:
        raise ManifestError("svccfg: document is empty")
    if root[0].tag != "service_bundle":
        raise ManifestError("svccfg: document is not a service bundle")
    return root[0]


def _check_value(ptype, value):
    if ptype == "boolean" and value not in ("true", "false"):
        raise ManifestError(f'svccfg: illegal boolean value "{value}"')
    if ptype in ("count", "integer") and not re.fullmatch(r"-?[0-9]+", value):
        raise ManifestError(f'svccfg: illegal value "{value}" for {ptype} (Illegal character)')
    return value


def _props_into(node, props):
    for pv in node.findall("propval"):
        ptype = pv.attrib.get("type", "astring")
        props[pv.attrib["name"]] = prop(ptype, _check_value(ptype, pv.attrib["value"]))
    for p in node.findall("property"):
        ptype = p.attrib["type"]
        values = []
        for lst in p.children:
            values += [_check_value(ptype, v.attrib["value"]) for v in lst.findall("value_node")]
        props[p.attrib["name"]] = prop(ptype, *values)


def _method_context(node, props):
    for attr in ("working_directory", "project", "resource_pool", "security_flags"):
        if attr in node.attrib:
            props[attr] = prop("astring", node.attrib[attr])
    cred = node.find("method_credential")
    if cred is not None:
        for attr in ("user", "group", "supp_groups", "privileges", "limit_privileges"):
            if attr in cred.attrib:
                props[attr] = prop("astring", cred.attrib[attr])
    profile = node.find("method_profile")
    if profile is not None:
        props["profile"] = prop("astring", profile.attrib["name"])
        props["use_profile"] = prop("boolean", "true")
    env = node.find("method_environment")
    if env is not None:
        props["environment"] = prop(
            "astring", *[f"{e.attrib['name']}={e.attrib['value']}" for e in env.findall("envvar")]
        )


def _dependency_pg(dep, entities):
    props = {
        "grouping": prop("astring", dep.attrib["grouping"]),
        "restart_on": prop("astring", dep.attrib["restart_on"]),
        "type": prop("astring", dep.attrib.get("type", "service")),
        "entities": prop("fmri", *entities),
    }
    _props_into(dep, props)
    return {"type": "dependency", "props": props}


def _entity_pgs(node, general_extra=None):
    pgs = {}
    general = dict(general_extra or {})
    for child in node.children:
        tag = child.tag
        if tag == "dependency":
            entities = [s.attrib["value"] for s in child.findall("service_fmri")]
            pgs[child.attrib["name"]] = _dependency_pg(child, entities)
        elif tag == "exec_method":
            props = {
                "exec": prop("astring", child.attrib["exec"]),
                "timeout_seconds": prop("count", _check_value("count", child.attrib["timeout_seconds"])),
                "type": prop("astring", child.attrib["type"]),
            }
            ctx = child.find("method_context")
            if ctx is not None:
                _method_context(ctx, props)
            _props_into(child, props)
            pgs[child.attrib["name"]] = {"type": "method", "props": props}
        elif tag == "method_context":
            props = {}
            _method_context(child, props)
            pgs["method_context"] = {"type": "framework", "props": props}
        elif tag == "property_group":
            props = {}
            _props_into(child, props)
            pgs[child.attrib["name"]] = {"type": child.attrib["type"], "props": props}
        elif tag == "stability":
            general["entity_stability"] = prop("astring", child.attrib["value"])
        elif tag == "single_instance":
            general["single_instance"] = prop("boolean", "true")
        elif tag == "restarter":
            general["restarter"] = prop("fmri", child.find("service_fmri").attrib["value"])
        elif tag == "template":
            cn = child.find("common_name")
            loc = cn.find("loctext") if cn is not None else None
            if loc is not None:
                pgs["tm_common_name"] = {
                    "type": "template",
                    "props": {"C": prop("ustring", loc.text.strip())},
                }
    if general:
        pgs["general"] = {"type": "framework", "props": general}
    return pgs


def _dependents(node, fmri):
    out = []
    for dep in node.findall("dependent"):
        target = dep.find("service_fmri").attrib["value"]
        out.append({"target": target, "name": dep.attrib["name"], "pg": _dependency_pg(dep, [fmri])})
    return out


def _service(node):
    name = node.attrib["name"]
    svc = {"name": name, "pgs": _entity_pgs(node), "instances": {}, "dependents": []}
    svc["dependents"] += _dependents(node, f"svc:/{name}")
    cdi = node.find("create_default_instance")
    if cdi is not None:
        svc["instances"]["default"] = {"enabled": cdi.attrib["enabled"] == "true", "pgs": {}}
    for inst in node.findall("instance"):
        iname = inst.attrib["name"]
        svc["instances"][iname] = {
            "enabled": inst.attrib["enabled"] == "true",
            "pgs": _entity_pgs(inst),
        }
        svc["dependents"] += _dependents(inst, f"svc:/{name}:{iname}")
    return svc


def _collect(bundle_node, out):
    for child in bundle_node.children:
        if child.tag == "service_bundle":
            _collect(child, out)
        elif child.tag == "service":
            out.append(_service(child))


def load(filename, validating=True):
    """Parse and check ``filename``; return the bundle or raise ManifestError."""
    root = _parse(filename)
    if validating and not os.environ.get("SVCCFG_NOVALIDATE"):
        errors = []
        validate(root, errors)
        if errors:
            lines = [f"{filename}:{line}: element {tag}: validity error : {msg}" for line, tag, msg in errors]
            raise ManifestError(*lines, "svccfg: Document is not valid.")
    if root.attrib.get("type") != "manifest":
        raise ManifestError("svccfg: document is not a manifest.")
    if not root.attrib.get("name"):
        raise ManifestError("svccfg: service bundle lacks name attribute")
    services = []
    _collect(root, services)
    return {"name": root.attrib["name"], "services": services}
