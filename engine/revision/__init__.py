"""Revision bundles on the controller: open and check a bundle, read its appspec.

Extraction, stripping and hashing live in ``engine.host.archive``, which the host agent runs.
"""

from engine.host.archive import BUNDLE_TYPES, DEFAULT_MAX_BUNDLE_BYTES
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
