"""What a revision bundle is made of: its types, its members, the limits, and UnsafeBundle.

Shared by bundle_scan (detection and the safety scan), bundle_read (reading member content),
extract (writing a scanned bundle out) and hashing. Like all of engine/host this ships to
remote hosts as is: standard library only, Python 3.8 syntax, a POSIX host.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Optional, Tuple, Union

BUNDLE_TYPES = ("tar", "tgz", "zip", "directory")

# What the functions accept as a path (a str or a pathlib.Path).
PathArg = Union[str, "os.PathLike[str]"]

# Total uncompressed bytes a bundle may hold: generous for real revisions, fatal for bombs.
DEFAULT_MAX_BUNDLE_BYTES = 4 * 1024**3

# What each member costs against that limit on top of its content (a tar header's size): an
# empty file still takes an inode and a directory entry, so a million of them are no free lunch.
MEMBER_COST_BYTES = 512

# Directory levels a bundle may nest: real trees need a few dozen; deeper ones only break the
# tools (recursion, PATH_MAX) that walk them after extraction.
MAX_BUNDLE_DEPTH = 256

KIND_FILE = "file"

KIND_DIRECTORY = "directory"

KIND_SYMLINK = "symlink"

KIND_HARDLINK = "hardlink"

# The member name of the bundle root itself (a tar's "./" entry, a directory bundle's top).
ROOT_NAME = "."

# Every UnsafeBundle.reason the bundle modules raise.
REFUSAL_REASONS = (
    "absolute_path",  # a member path starting with "/"
    "parent_escape",  # a member path climbing above the root with ".."
    "link_outside",  # a symlink or hard link leading outside the root (or absolute)
    "through_link",  # a member path passing through a symlink member
    "bad_link",  # an empty symlink target, a hard link to nothing earlier in the bundle
    "link_loop",  # symlinks that refer to each other endlessly
    "device_file",  # a character or block device
    "special_file",  # a FIFO or a socket
    "conflicting_member",  # one name used for two kinds, or a file used as a directory
    "too_large",  # more uncompressed bytes than the limit (each member counts its header too)
    "too_deep",  # directories nested more than MAX_BUNDLE_DEPTH levels
    "bad_archive",  # unreadable, truncated or corrupt archive data
    "changed",  # the bundle changed between the scan and the extraction
    "unreadable",  # the bundle or one of its files cannot be read
    "not_found",  # the bundle path does not exist
    "invalid_type",  # a bundle type outside BUNDLE_TYPES
    "wrong_type",  # a directory given as an archive type, or a file given as "directory"
    "unknown_type",  # content that is neither tar, gzip-compressed tar nor zip
    "control_character",  # a member name holding a newline or another control character
    "not_a_file",  # a bundle path that is a device, FIFO or socket, not a file or directory
)

_CHUNK_BYTES = 1024 * 1024


class UnsafeBundle(Exception):
    """A bundle refused before (or while) it is written anywhere.

    ``reason`` is a short code from REFUSAL_REASONS, ``bundle`` the bundle path, ``member`` the
    offending member name as stored in the bundle (None when the bundle as a whole is at fault),
    ``problem`` what is wrong and ``advice`` what to do; ``str()`` is the full sentence.
    """

    def __init__(
        self, reason: str, bundle: str, member: Optional[str], problem: str, advice: str
    ) -> None:
        self.reason = reason
        self.bundle = bundle
        self.member = member
        self.problem = problem
        self.advice = advice
        where = f"bundle {bundle!r}"
        if member is not None:
            where += f", member {member!r}"
        super().__init__(f"Refusing {where}: {problem}. {advice}")

    def __reduce__(self) -> Tuple[type, Tuple[str, str, Optional[str], str, str]]:
        return (
            type(self),
            (self.reason, self.bundle, self.member, self.problem, self.advice),
        )


@dataclass(frozen=True)
class BundleMember:
    """One entry of a bundle, as the scan saw it.

    ``name`` is the normalised path below the root ("a/b", or "." for the root itself);
    ``archive_name`` the name as stored. ``kind`` is one of the KIND_* values. ``size`` is the
    declared content size of files (0 for other kinds), ``mode`` the permission bits (0o7777).
    ``link_target`` is the symlink target as stored, or for a hard link the stored name of the
    member it links to. ``index`` is the position in the archive (walk order for directories).
    """

    name: str
    archive_name: str
    kind: str
    size: int
    mode: int
    link_target: Optional[str]
    mtime: float
    uid: Optional[int]
    gid: Optional[int]
    uname: Optional[str]
    gname: Optional[str]
    index: int


def _not_found(bundle: str) -> UnsafeBundle:
    return UnsafeBundle(
        "not_found",
        bundle,
        None,
        "the path does not exist",
        "Check the bundle location (relative paths are taken from the current directory)",
    )


def _unreadable(bundle: str, member: Optional[str], exc: OSError) -> UnsafeBundle:
    return UnsafeBundle(
        "unreadable",
        bundle,
        member,
        f"it cannot be read ({exc.strerror or exc})",
        "Check its permissions",
    )


def _too_large(
    bundle: str, member: Optional[str], size: int, max_bytes: int, members: int = 0
) -> UnsafeBundle:
    counted = (
        f", counting {MEMBER_COST_BYTES} bytes for each of its {members} members" if members else ""
    )
    return UnsafeBundle(
        "too_large",
        bundle,
        member,
        f"its content adds up to more than {max_bytes} bytes uncompressed (at least {size}"
        f"{counted})",
        "Leave build outputs and dependencies out of the revision, or raise the bundle size "
        "limit if this size (or number of files) is intended",
    )


def _changed(bundle: str, member: Optional[str]) -> UnsafeBundle:
    return UnsafeBundle(
        "changed",
        bundle,
        member,
        "the bundle changed between the safety scan and the extraction",
        "Do not modify the bundle while it is deployed, then deploy again",
    )
