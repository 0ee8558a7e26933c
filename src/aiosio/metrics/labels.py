"""The ``namespace`` label: bounded by what the server declared, whatever clients connect to."""

from __future__ import annotations

import re

from aiosio.server.namespace import DynamicNamespace
from aiosio.server.namespace import Namespace
from aiosio.server.server import Server

__all__ = ["family_label", "namespace_label"]


def namespace_label(sio: Server, nsp: Namespace) -> str:
    """The label of ``nsp``: its name, or for a child of a dynamic namespace, its family's."""
    for family in sio.dynamic_namespaces:
        if family.children.get(nsp.name) is nsp:
            return family_label(family)
    return nsp.name


def family_label(family: DynamicNamespace) -> str:
    """A dynamic namespace's label: its regex's pattern, or its callable's name."""
    matcher = family.matcher
    if isinstance(matcher, re.Pattern):
        return str(matcher.pattern)
    return str(getattr(matcher, "__qualname__", type(matcher).__name__))
