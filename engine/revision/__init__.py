"""Revision bundles on the controller: open and check a bundle, read its appspec.

Extraction and stripping live in ``engine.host.extract``, hashing in ``engine.host.hashing``;
the host agent runs both.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from engine.lazy import lazy_exports

if TYPE_CHECKING:
    from engine.host.bundle_model import BUNDLE_TYPES, DEFAULT_MAX_BUNDLE_BYTES
    from engine.revision.appspec_source import (
        DEFAULT_APPSPEC_NAMES,
        MAX_APPSPEC_BYTES,
        AppSpecSource,
        read_appspec,
    )
    from engine.revision.bundle import Bundle, open_bundle, parse_size
    from engine.revision.errors import BundleError

__all__ = [
    "BUNDLE_TYPES",
    "DEFAULT_APPSPEC_NAMES",
    "DEFAULT_MAX_BUNDLE_BYTES",
    "MAX_APPSPEC_BYTES",
    "AppSpecSource",
    "Bundle",
    "BundleError",
    "open_bundle",
    "parse_size",
    "read_appspec",
]

# each name's module, imported when the name is first used
__getattr__ = lazy_exports(
    __name__,
    {
        "engine.host.bundle_model": "BUNDLE_TYPES DEFAULT_MAX_BUNDLE_BYTES",
        "engine.revision.appspec_source": (
            "DEFAULT_APPSPEC_NAMES MAX_APPSPEC_BYTES AppSpecSource read_appspec"
        ),
        "engine.revision.bundle": "Bundle open_bundle parse_size",
        "engine.revision.errors": "BundleError",
    },
)
