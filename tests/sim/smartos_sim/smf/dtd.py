"""The rules of /usr/share/lib/xml/dtd/service_bundle.dtd.1, checked like libxml2.

Only what SMF manifests use is declared; ``template`` and
``notification_parameters`` contents are accepted as they are.
Messages follow libxml2's validity errors.
"""

import re

DTD_PATH = "/usr/share/lib/xml/dtd/service_bundle.dtd.1"

REQ = "#REQUIRED"
IMP = "#IMPLIED"
TF = ("true", "false")
GROUPING = ("require_all", "require_any", "exclude_all", "optional_all")
RESTART_ON = ("error", "restart", "refresh", "none")
TYPES = (
    "astring",
    "boolean",
    "count",
    "fmri",
    "host",
    "hostname",
    "integer",
    "net_address",
    "net_address_v4",
    "net_address_v6",
    "opaque",
    "time",
    "uri",
    "ustring",
)
LISTS = tuple(f"{t}_list" for t in TYPES)
PROPS = "(propval | property)*"
ANY = "ANY"
EMPTY = "EMPTY"

ELEMENTS = {
    "service_bundle": (
        "(service_bundle | service | xi:include)*",
        {"type": (REQ, ("archive", "manifest", "profile")), "name": (REQ, None)},
    ),
    "service": (
        "(create_default_instance? , single_instance? , restarter? , dependency* , dependent* , "
        "method_context? , exec_method* , notification_parameters* , property_group* , "
        "instance* , stability? , template?)",
        {
            "name": (REQ, None),
            "type": (REQ, ("service", "restarter", "milestone")),
            "version": (REQ, None),
        },
    ),
    "instance": (
        "(restarter? , dependency* , dependent* , method_context? , exec_method* , "
        "notification_parameters* , property_group* , template?)",
        {"name": (REQ, None), "enabled": (REQ, TF)},
    ),
    "create_default_instance": (EMPTY, {"enabled": (REQ, TF)}),
    "single_instance": (EMPTY, {}),
    "restarter": ("(service_fmri)", {}),
    "service_fmri": (EMPTY, {"value": (REQ, None)}),
    "dependency": (
        f"(service_fmri* , stability? , {PROPS})",
        {
            "name": (REQ, None),
            "grouping": (REQ, GROUPING),
            "restart_on": (REQ, RESTART_ON),
            "type": (REQ, ("service", "path")),
            "delete": (IMP, TF),
        },
    ),
    "dependent": (
        f"(service_fmri , stability? , {PROPS})",
        {
            "name": (REQ, None),
            "grouping": (REQ, GROUPING),
            "restart_on": (REQ, RESTART_ON),
            "delete": (IMP, TF),
            "override": (IMP, TF),
        },
    ),
    "method_context": (
        "((method_profile | method_credential)? , method_environment?)",
        {
            "working_directory": (IMP, None),
            "project": (IMP, None),
            "resource_pool": (IMP, None),
            "security_flags": (IMP, None),
            "delete": (IMP, TF),
        },
    ),
    "method_profile": (EMPTY, {"name": (REQ, None)}),
    "method_credential": (
        EMPTY,
        {
            "user": (REQ, None),
            "group": (IMP, None),
            "supp_groups": (IMP, None),
            "privileges": (IMP, None),
            "limit_privileges": (IMP, None),
        },
    ),
    "method_environment": ("(envvar+)", {}),
    "envvar": (EMPTY, {"name": (REQ, None), "value": (REQ, None)}),
    "exec_method": (
        f"(method_context? , {PROPS} , stability?)",
        {
            "type": (REQ, ("method", "monitor")),
            "name": (REQ, None),
            "exec": (REQ, None),
            "timeout_seconds": (REQ, None),
            "delete": (IMP, TF),
        },
    ),
    "property_group": (
        f"({PROPS} , stability?)",
        {"name": (REQ, None), "type": (REQ, None), "delete": (IMP, TF)},
    ),
    "propval": (
        EMPTY,
        {"name": (REQ, None), "type": (IMP, TYPES), "value": (REQ, None), "override": (IMP, TF)},
    ),
    "property": (
        "(" + " | ".join(LISTS) + ")?",
        {"name": (REQ, None), "type": (REQ, TYPES), "override": (IMP, TF)},
    ),
    "value_node": (EMPTY, {"value": (REQ, None)}),
    "stability": (
        EMPTY,
        {"value": (REQ, ("Standard", "Stable", "Evolving", "Unstable", "External", "Obsolete"))},
    ),
    "template": (ANY, {}),
    "notification_parameters": (ANY, {}),
    "xi:include": (ANY, {"href": (REQ, None), "parse": (IMP, None)}),
}
for _lst in LISTS:
    ELEMENTS[_lst] = ("(value_node+)", {})

_TOKEN = re.compile(r"[A-Za-z_:][-A-Za-z0-9_:]*|[()|,?*+]")
_REGEX_CACHE = {}


def _regex(model):
    if model not in _REGEX_CACHE:
        out = []
        for tok in _TOKEN.findall(model):
            if tok == "(":
                out.append("(?:")
            elif tok == ")":
                out.append(")")
            elif tok == ",":
                continue
            elif tok in "|?*+":
                out.append(tok)
            else:
                out.append(f"(?:{re.escape(tok)} )")
        _REGEX_CACHE[model] = re.compile("".join(out))
    return _REGEX_CACHE[model]


def validate(node, errors):
    """Append libxml2-style ``(line, element, message)`` errors for ``node`` and below."""
    decl = ELEMENTS.get(node.tag)
    if decl is None:
        errors.append((node.line, node.tag, f"No declaration for element {node.tag}"))
        return
    model, attrs = decl
    for name in node.attrib:
        if name not in attrs and not name.startswith("xmlns"):
            errors.append((node.line, node.tag, f"No declaration for attribute {name} of element {node.tag}"))
    for name, (need, enum) in attrs.items():
        value = node.attrib.get(name)
        if value is None:
            if need == REQ:
                errors.append((node.line, node.tag, f"Element {node.tag} does not carry attribute {name}"))
        elif enum is not None and value not in enum:
            errors.append(
                (
                    node.line,
                    node.tag,
                    f'Value "{value}" for attribute {name} of {node.tag} is not among the enumerated set',
                )
            )
    if model == ANY:
        return
    if model == EMPTY:
        if node.children or node.text.strip():
            errors.append((node.line, node.tag, f"Element {node.tag} was declared EMPTY this one has content"))
        return
    got = "".join(c.tag + " " for c in node.children)
    if node.text.strip() or not _regex(model).fullmatch(got):
        shown = "(" + " ".join(c.tag for c in node.children) + ")" if node.children else "CDATA"
        errors.append(
            (
                node.line,
                node.tag,
                f"Element {node.tag} content does not follow the DTD, expecting {model}, got {shown}",
            )
        )
    for child in node.children:
        validate(child, errors)
