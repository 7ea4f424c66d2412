"""XML bodies, for clients that ask for them: element names equal the JSON field names.
Parsing goes through defusedxml (no entity expansion, no external entities)."""

from __future__ import annotations

import re
from typing import Any

_NOT_XML = "[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]"  # compiled on first use


def escape(text: str, entities: dict[str, str] | None = None) -> str:
    """XML-escape, replacing characters XML 1.0 cannot carry at all (controls, lone surrogates)."""
    from xml.sax.saxutils import escape as _escape  # XML answers only: not at cold start

    return _escape(re.sub(_NOT_XML, "\ufffd", text), entities or {})

_LIST_ITEM = {"jobs": "job", "deliveries": "delivery", "services": "service", "details": "detail",
              "chain": "step", "statusVariables": "name", "loc": "item"}


def dumps(root: str, value: Any) -> str:
    """`value` as `<root>`. A body whose list is named like the root (`{"jobs": [...]}`
    under `jobs`) holds its items directly: `<jobs><job/>...<nextCursor/></jobs>`."""
    if isinstance(value, dict) and isinstance(value.get(root), list):
        item = _LIST_ITEM.get(root, "item")
        inner = "".join(
            "".join(_element(item, v) for v in value[root]) if k == root else _element(k, v)
            for k, v in value.items())
        return f'<?xml version="1.0" encoding="UTF-8"?><{root}>{inner}</{root}>'
    return '<?xml version="1.0" encoding="UTF-8"?>' + _element(root, value)


def _element(name: str, value: Any) -> str:
    tag = name if _valid_name(name) else "entry"
    attr = "" if tag == name else f' name="{escape(name, {chr(34): "&quot;"})}"'
    if value is None:
        return f'<{tag}{attr} nil="true"/>'
    if isinstance(value, dict):
        inner = "".join(_element(k, v) for k, v in value.items())
    elif isinstance(value, list):
        item = _LIST_ITEM.get(name, "item")
        inner = "".join(_element(item, v) for v in value)
    elif isinstance(value, bool):
        inner = "true" if value else "false"
    else:
        inner = escape(str(value))
    return f"<{tag}{attr}>{inner}</{tag}>"


def _valid_name(name: str) -> bool:
    return bool(name) and (name[0].isalpha() or name[0] == "_") and all(
        c.isalnum() or c in "_-." for c in name) and not name.lower().startswith("xml")


class XmlError(ValueError):
    pass


MAX_DEPTH = 64  # elements inside elements; a submit needs about 35 (input nests at most 30)


def loads(data: bytes) -> dict[str, Any]:
    """Parse a `<job>` submit body into the JSON shape: `variables` children become an
    object of strings, `<chain>` holds `<step>`s, and values inside `input` are typed
    (numbers, booleans, nested objects, repeated elements as lists)."""
    from xml.etree.ElementTree import ParseError

    from defusedxml import ElementTree
    from defusedxml.common import DefusedXmlException

    try:
        root = ElementTree.fromstring(data)
    except (ParseError, DefusedXmlException, ValueError, LookupError) as exc:
        # LookupError: an encoding declaration Python does not know (encoding="bogus")
        raise XmlError(f"malformed XML: {exc}") from exc
    if _too_deep(root, MAX_DEPTH):
        raise XmlError(f"XML nested deeper than {MAX_DEPTH} elements")
    if root.tag != "job":
        raise XmlError("the root element must be <job>")
    return _fields(root)


def _too_deep(root: Any, limit: int) -> bool:
    """Measured without recursion, so no document can exhaust Python's stack here."""
    level = [root]
    for _ in range(limit):
        level = [child for node in level for child in node]
        if not level:
            return False
    return True


def _fields(node: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for child in node:
        key = child.get("name") or child.tag
        if key == "input":
            out[key] = _typed(child) if len(child) else {}
        elif key == "variables":
            out[key] = {c.get("name") or c.tag: (c.text or "").strip() for c in child}
        elif key == "chain":
            out[key] = [_fields(step) for step in child]
        else:
            out[key] = (child.text or "").strip()
    return out


def _typed(node: Any) -> Any:
    children = list(node)
    if not children:
        return None if node.get("nil") == "true" else _scalar((node.text or "").strip())
    tags = [c.get("name") or c.tag for c in children]
    if len(children) > 1 and len(set(tags)) == 1 or node.get("type") == "list":
        return [_typed(c) for c in children]
    return {t: _typed(c) for t, c in zip(tags, children, strict=True)}


def _scalar(text: str) -> Any:
    if text in ("true", "false"):
        return text == "true"
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text
