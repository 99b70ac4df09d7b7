"""The DOM node index: rrweb names nodes by id; a click on node 1147 needs its tag, text and label.

Built from the full snapshot (rrweb type 2) and kept current by mutations, so a click on node 1147
becomes `{"selector": "a.nav-link", "text": "Pricing", "tag": "a"}`. The snapshot is indexed by
reference, never copied.
"""
from __future__ import annotations

import re
from typing import Any, Iterable, Optional

NODE_DOCUMENT, NODE_ELEMENT, NODE_TEXT = 0, 2, 3

_INTERACTIVE_TAGS = frozenset({"a", "button", "input", "select", "textarea", "label", "summary", "option"})
_INTERACTIVE_ROLES = frozenset({"button", "link", "tab", "menuitem", "checkbox", "radio", "switch", "option"})
_FIELD_TAGS = frozenset({"input", "select", "textarea"})
_SKIP_TEXT_TAGS = frozenset({"script", "style", "noscript", "template"})
# Input types whose value attribute is a visible label rather than what the user typed.
_BUTTON_INPUT_TYPES = frozenset({"button", "submit", "reset"})
# Attributes that name an element for a person, in the order a screen reader would prefer.
_LABEL_ATTRIBUTES = ("aria-label", "title", "alt", "placeholder")
_CSS_IDENT = re.compile(r"^-?[A-Za-z_][\w-]*$")
_SPACES = re.compile(r"\s+")
_MAX_TEXT_NODES = 200
_MAX_ANCESTORS = 6          # how far up a click on an inner part looks for its control
_MAX_LABEL_ANCESTORS = 3    # how far up an unnamed element borrows a name (icon inside a link)


class Node:
    """One DOM node as far as targets need it. `attrs` is the snapshot's own dict until a
    mutation changes it (copy on write), so indexing never copies the snapshot."""

    __slots__ = ("kind", "tag", "attrs", "text", "parent", "children")

    def __init__(self, kind: int, tag: str, attrs: dict, text: str, parent: Optional[int]) -> None:
        self.kind = kind
        self.tag = tag
        self.attrs = attrs
        self.text = text
        self.parent = parent
        self.children: dict[int, None] = {}  # ordered set; O(1) removal


class Dom:
    def __init__(self) -> None:
        self.nodes: dict[int, Node] = {}

    def reset(self) -> None:
        self.nodes = {}

    def add_tree(self, root: Any, parent_id: Optional[int]) -> None:
        stack = [(root, parent_id)]
        nodes = self.nodes
        while stack:
            raw, parent = stack.pop()
            if not isinstance(raw, dict):
                continue
            node_id = raw.get("id")
            if not isinstance(node_id, int):
                continue
            kind = raw.get("type")
            tag = raw.get("tagName")
            attrs = raw.get("attributes")
            text = raw.get("textContent")
            node = Node(kind if isinstance(kind, int) else -1, tag.lower() if isinstance(tag, str) else "",
                        attrs if isinstance(attrs, dict) else {}, text if isinstance(text, str) else "", parent)
            nodes[node_id] = node
            if parent is not None and parent in nodes:
                nodes[parent].children[node_id] = None
            children = raw.get("childNodes")
            if isinstance(children, list):
                stack.extend((child, node_id) for child in reversed(children))

    def apply_mutation(self, data: dict) -> None:
        nodes = self.nodes
        for removal in dicts(data.get("removes")):
            node = nodes.get(removal.get("id"))
            parent = nodes.get(removal.get("parentId"))
            if parent is not None:
                parent.children.pop(removal.get("id"), None)
            if node is not None:
                node.parent = None  # kept in the index: a late click on it still resolves
        for addition in dicts(data.get("adds")):
            parent_id = addition.get("parentId")
            self.add_tree(addition.get("node"), parent_id if isinstance(parent_id, int) else None)
        for change in dicts(data.get("texts")):
            node = nodes.get(change.get("id"))
            if node is not None:
                value = change.get("value")
                node.text = value if isinstance(value, str) else ""
        for change in dicts(data.get("attributes")):
            node = nodes.get(change.get("id"))
            attributes = change.get("attributes")
            if node is not None and isinstance(attributes, dict):
                merged = dict(node.attrs)
                for key, value in attributes.items():
                    if value is None:
                        merged.pop(key, None)
                    else:
                        merged[key] = value
                node.attrs = merged

    def element_for(self, node_id: Any) -> tuple[Optional[int], Optional[Node]]:
        """The element a pointer event names: text nodes resolve to their parent element, inner
        parts (an svg path inside a button) to the nearest interactive ancestor."""
        node = self.nodes.get(node_id)
        if node is None:
            return None, None
        if node.kind != NODE_ELEMENT and node.parent is not None:
            node_id, node = node.parent, self.nodes.get(node.parent)
            if node is None:
                return None, None
        if node.kind != NODE_ELEMENT:
            return node_id, node
        current_id, current = node_id, node
        for _ in range(_MAX_ANCESTORS):
            if is_interactive(current):
                return current_id, current
            parent = self._parent_element(current)
            if parent is None:
                break
            current_id, current = current.parent, parent
        return node_id, node

    def _parent_element(self, node: Node) -> Optional[Node]:
        parent = self.nodes.get(node.parent) if node.parent is not None else None
        if parent is None or parent.kind != NODE_ELEMENT or parent.tag in ("body", "html"):
            return None
        return parent

    def selector(self, node: Node) -> Optional[str]:
        if node.kind == NODE_DOCUMENT:
            return "document"
        own = _simple_selector(node)
        if own is None:
            return None
        if "#" in own or "." in own or "[" in own or node.tag in ("html", "body"):
            return own
        parent = self._parent_element(node)
        if parent is not None:
            parent_selector = _simple_selector(parent)
            if parent_selector:
                return f"{parent_selector} > {own}"
        return own

    def text(self, node: Node, limit: int) -> Optional[str]:
        """What a person would call the element: its text, else its label attributes, else the
        alt of an image inside it, else the name of a close ancestor (an icon inside a link)."""
        if node.kind == NODE_DOCUMENT:
            return None
        if node.kind == NODE_TEXT:
            return trim(node.text, limit)
        current: Optional[Node] = node
        for _ in range(_MAX_LABEL_ANCESTORS):
            if current is None:
                break
            own = self._own_name(current, limit)
            if own:
                return own
            current = self._parent_element(current)
        return None

    def _own_name(self, node: Node, limit: int) -> Optional[str]:
        attrs = node.attrs
        if node.tag == "input":
            # Never the value of a text field (that is what the user typed); labels only.
            if str(attrs.get("type", "")).lower() in _BUTTON_INPUT_TYPES:
                return trim(as_str(attrs.get("value")), limit) or label_attr(attrs, limit)
            return label_attr(attrs, limit) or self._label_for(attrs, limit)
        return (self._descendant_text(node, limit) or label_attr(attrs, limit)
                or self._image_alt(node, limit))

    def _label_for(self, attrs: dict, limit: int) -> Optional[str]:
        """The text of a <label for=id> naming this field (linear scan: only for unnamed fields)."""
        element_id = attrs.get("id")
        if not isinstance(element_id, str) or not element_id:
            return None
        for node in self.nodes.values():
            if node.tag == "label" and node.attrs.get("for") == element_id:
                return self._descendant_text(node, limit)
        return None

    def _descendant_text(self, node: Node, limit: int) -> Optional[str]:
        parts: list[str] = []
        size = 0
        stack = list(reversed(node.children))
        seen = 0
        nodes = self.nodes
        while stack and seen < _MAX_TEXT_NODES and size < limit * 2:
            child = nodes.get(stack.pop())
            seen += 1
            if child is None:
                continue
            if child.kind == NODE_TEXT:
                if child.text.strip():
                    parts.append(child.text)
                    size += len(child.text)
            elif child.kind == NODE_ELEMENT and child.tag not in _SKIP_TEXT_TAGS:
                stack.extend(reversed(child.children))
        return trim(" ".join(parts), limit)

    def _image_alt(self, node: Node, limit: int) -> Optional[str]:
        stack = list(node.children)
        seen = 0
        while stack and seen < _MAX_TEXT_NODES:
            child = self.nodes.get(stack.pop())
            seen += 1
            if child is None or child.kind != NODE_ELEMENT:
                continue
            if child.tag in ("img", "svg", "title"):
                label = label_attr(child.attrs, limit)
                if label:
                    return label
            stack.extend(child.children)
        return None


def is_interactive(node: Node) -> bool:
    attrs = node.attrs
    return (node.tag in _INTERACTIVE_TAGS or attrs.get("role") in _INTERACTIVE_ROLES
            or "onclick" in attrs or "href" in attrs)


def describe(node: Node) -> dict[str, str]:
    """What kind of control the element is (tag, input type, ARIA role): lets later stages tell a
    checkbox or a toggle from a text field without parsing selectors."""
    out = {"tag": node.tag} if node.tag else {}
    for key in ("type", "role"):
        value = node.attrs.get(key)
        if isinstance(value, str) and value.strip():
            out[key] = value.strip().lower()
    return out


def _simple_selector(node: Node) -> Optional[str]:
    tag = node.tag or None
    if tag is None:
        return None
    attrs = node.attrs
    selector = tag
    element_id = attrs.get("id")
    if isinstance(element_id, str) and _CSS_IDENT.match(element_id):
        selector += "#" + element_id
    classes = attrs.get("class")
    if isinstance(classes, str):
        picked = [c for c in classes.split() if _CSS_IDENT.match(c)][:2]
        if picked:
            selector += "." + ".".join(picked)
    if tag in _FIELD_TAGS and "#" not in selector:
        name = attrs.get("name")
        if isinstance(name, str) and _CSS_IDENT.match(name):
            selector += f"[name={name}]"
        elif isinstance(attrs.get("type"), str) and _CSS_IDENT.match(attrs["type"]) and "." not in selector:
            selector += f"[type={attrs['type']}]"
    return selector


def label_attr(attrs: dict, limit: int) -> Optional[str]:
    for key in _LABEL_ATTRIBUTES:
        value = attrs.get(key)
        if isinstance(value, str) and value.strip():
            return trim(value, limit)
    return None


def trim(text: Optional[str], limit: int) -> Optional[str]:
    if not text:
        return None
    text = _SPACES.sub(" ", text).strip()
    if not text:
        return None
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def as_str(value: Any) -> Optional[str]:
    return value if isinstance(value, str) else None


def dicts(value: Any) -> Iterable[dict]:
    if isinstance(value, list):
        return (item for item in value if isinstance(item, dict))
    return ()
