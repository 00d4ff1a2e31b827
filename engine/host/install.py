"""Install: cleanup of the previous install, copies, permissions
(docs/codedeploy-agent.md#installing-files).

Same decisions as the reference, with these differences, each keeping its accept/reject outcome:
- Every check runs before anything changes. The conflict checks see the filesystem as it will
  be once the previous install's cleanup has run, so a DISALLOW conflict, a duplicate target or
  an unknown owner fails the deployment with the previous revision's files still in place.
- OVERWRITE replaces the target path itself: it never writes through an existing symlink and
  refuses to replace a directory with a file. A path occupied by a dangling symlink counts as
  existing.
- Symlinks in the revision are installed as symlinks, also symlinked directories (the newer
  agent's behaviour; 1.8.1 flattened them, issue #152). chmod and ACLs skip symlinks and chown
  changes the link itself, so a link never carries a permission change outside the install.
- Owners and groups are resolved before anything is installed.
- With `fs_root` (a local instance's folder), every destination and permission object is
  placed under that folder; relative destinations are taken from "/".
"""

from __future__ import annotations

import errno
import grp
import json
import os
import pwd
import shutil
import stat
import subprocess
from typing import Callable, Dict, List, Optional, Set

from . import permissions as perms
from .hooks import ruby_join
from .layout import DeploymentRoot, write_atomically

FILE_EXISTS_BEHAVIORS = ("DISALLOW", "OVERWRITE", "RETAIN")


class InstallError(Exception):
    """Install cannot proceed; the message says what and how to fix it."""


class InstallStopped(Exception):
    """Install was asked to stop; what it placed so far is in the cleanup file."""


def place(path: str, fs_root: Optional[str]) -> str:
    """The absolute, normalised path a destination or permission object refers to."""
    if fs_root:
        return os.path.normpath(os.path.join(fs_root, os.path.normpath("/" + path).lstrip("/")))
    return os.path.abspath(os.path.expanduser(path))


# The cleanup file: a header line, then one JSON object per placed path, so no file name
# (newlines included) can pose as another entry. Files without the header are the older
# one-path-per-line format, still read so hosts installed before keep their cleanup.
CLEANUP_HEADER = {"deploydeck_cleanup": 2}
_SEMANAGE_PREFIX = "semanage\0"


class CleanupWriter:
    """Appends one record per path Install places, each flushed before the next change."""

    def __init__(self, handle) -> None:
        self._handle = handle
        self._write(CLEANUP_HEADER)

    def _write(self, record: Dict) -> None:
        self._handle.write(json.dumps(record) + "\n")
        self._handle.flush()

    def placed(self, path: str) -> None:
        if path.isascii() and path.isprintable() and '"' not in path and "\\" not in path:
            # what json.dumps writes for such a path, without its encoder (one call a file)
            self._handle.write('{"remove": "' + path + '"}\n')
            self._handle.flush()
        else:
            self._write({"remove": path})

    def semanage(self, path: str) -> None:
        self._write({"semanage": path})


def read_cleanup(path: str) -> List[str]:
    """Cleanup entries in replay order (reverse): paths, or "semanage\0<path>" for a file
    context rule. A torn last line is discarded; a damaged record is an InstallError."""
    try:
        with open(path, encoding="utf-8", errors="surrogateescape") as f:
            content = f.read()
    except FileNotFoundError:
        return []
    lines = content.split("\n")
    lines.pop()  # the text after the last newline: "" or a torn write
    if not lines or not lines[0].startswith("{"):
        return [line for line in reversed(lines) if line]  # the older format
    entries = []
    for number, line in enumerate(lines, 1):
        try:
            record = json.loads(line)
        except ValueError:
            record = None
        if number == 1 and record == CLEANUP_HEADER:
            continue
        if isinstance(record, dict) and isinstance(record.get("remove"), str):
            entries.append(record["remove"])
        elif isinstance(record, dict) and isinstance(record.get("semanage"), str):
            entries.append(_SEMANAGE_PREFIX + record["semanage"])
        else:
            raise InstallError(
                "The cleanup file %s is damaged at line %d (%r): nothing was removed. Check "
                "which files the previous install placed, remove them and this file by hand, "
                "then deploy again." % (path, number, line[:200])
            )
    return list(reversed(entries))


def check_cleanup(
    entries: List[str], cleanup_path: str, install_json: str, fs_root: Optional[str]
) -> None:
    """Refuse to replay an entry the previous install did not place: one outside `fs_root`
    (a local instance's folder) or, when its instructions are on record, not among their
    copies and directories. Runs before anything is removed."""
    placed = _previous_targets(install_json)
    base = os.path.normpath(fs_root) if fs_root else None
    for entry in entries:
        path = entry[len(_SEMANAGE_PREFIX) :] if entry.startswith(_SEMANAGE_PREFIX) else entry
        normal = os.path.normpath(path)
        outside = base is not None and not (normal == base or normal.startswith(base + "/"))
        unknown = (
            placed is not None and not entry.startswith(_SEMANAGE_PREFIX) and normal not in placed
        )
        if outside or unknown or not os.path.isabs(path):
            where = "outside the instance folder %s" % base if outside else "not a path it placed"
            raise InstallError(
                "The cleanup file %s lists %r, %s according to %s: nothing was removed. The "
                "file may be damaged or written by an older agent from a file name holding a "
                "newline. Remove that line (or the file, after removing the previous files by "
                "hand), then deploy again." % (cleanup_path, path, where, install_json)
            )


def _previous_targets(install_json: str) -> Optional[Set[str]]:
    """The copy destinations and created directories of the last Install, or None."""
    try:
        with open(install_json, encoding="utf-8", errors="surrogateescape") as f:
            instructions = json.load(f)["instructions"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    targets = set()
    for command in instructions if isinstance(instructions, list) else []:
        if isinstance(command, dict):
            for key in ("destination", "directory"):
                if isinstance(command.get(key), str):
                    targets.add(os.path.normpath(command[key]))
    return targets


def simulate_cleanup(lines: List[str]) -> Set[str]:
    """The paths a replay of `lines` will remove (directories only when emptied)."""
    removed: Set[str] = set()
    for line in lines:
        if line.startswith(_SEMANAGE_PREFIX):
            continue
        try:
            mode = os.lstat(line).st_mode  # one call per path: link, directory or other
        except OSError:
            continue
        if stat.S_ISDIR(mode):
            try:
                children = os.listdir(line)
            except OSError:
                continue
            if all(os.path.join(line, c) in removed for c in children):
                removed.add(line)
        else:
            removed.add(line)
    return removed


def replay_cleanup(lines: List[str]) -> None:
    for line in lines:
        if line.startswith(_SEMANAGE_PREFIX):
            _run(["semanage", "fcontext", "-d", line[len(_SEMANAGE_PREFIX) :]], check=False)
            continue
        try:
            _remove_entry(line)
        except FileNotFoundError:
            pass
        except OSError as error:
            if error.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                raise InstallError(
                    "Cleanup of the previous install could not remove %s: %s"
                    % (line, error.strerror)
                ) from error


def _remove_entry(path: str) -> None:
    """Unlink a file or symlink (never what a link points to), or remove an empty directory:
    one system call for a file, the common case; unlink refuses a directory (EISDIR on Linux,
    EPERM elsewhere), which is then looked at once."""
    try:
        os.unlink(path)
    except IsADirectoryError:
        os.rmdir(path)
    except PermissionError:
        if not stat.S_ISDIR(os.lstat(path).st_mode):
            raise
        os.rmdir(path)


class _Plan:
    """The instruction list of one Install, built and checked before anything changes."""

    def __init__(self, removed: Set[str]) -> None:
        self.removed = removed
        self.commands: List[Dict] = []
        self.copy_targets: Dict[str, str] = {}
        self.mkdir_targets: Dict[str, None] = {}
        self.permission_targets: Set[str] = set()

    def exists(self, path: str) -> bool:
        return os.path.lexists(path) and path not in self.removed

    def is_dir(self, path: str) -> bool:
        return os.path.isdir(path) and path not in self.removed

    def copy(self, source: str, destination: str) -> None:
        destination = os.path.normpath(destination)
        if destination in self.copy_targets:
            raise InstallError(
                "Two sources are installed to the same destination %s: %s and %s. Remove one "
                "of them from the files section of the appspec."
                % (destination, self.copy_targets[destination], source)
            )
        if destination in self.mkdir_targets:
            raise InstallError(
                "The file %s would be installed at %s, where this deployment creates a "
                "directory. Rename one of them in the revision or the appspec."
                % (source, destination)
            )
        self.commands.append({"type": "copy", "source": source, "destination": destination})
        self.copy_targets[destination] = source

    def mkdir(self, directory: str) -> None:
        directory = os.path.normpath(directory)
        if directory in self.copy_targets:
            raise InstallError(
                "The directory %s would be created where this deployment installs the file "
                "%s. Rename one of them in the revision or the appspec."
                % (directory, self.copy_targets[directory])
            )
        if directory not in self.mkdir_targets:
            self.commands.append({"type": "mkdir", "directory": directory})
            self.mkdir_targets[directory] = None

    def fill_in_missing_ancestors(self, path: str) -> None:
        missing: List[str] = []
        parent = os.path.dirname(path)
        while not self.exists(parent) and parent not in (".", "/", ""):
            missing.insert(0, parent)
            parent = os.path.dirname(parent)
        for directory in missing:
            self.mkdir(directory)


def plan_install(
    archive_dir: str,
    appspec: Dict,
    file_exists_behavior: str,
    fs_root: Optional[str],
    removed: Set[str],
) -> _Plan:
    """Generate and check every instruction (docs/codedeploy-agent.md#installing-files) without
    changing anything."""
    plan = _Plan(removed)
    base = os.path.realpath(fs_root) if fs_root else None
    real_parents: Dict[str, str] = {}

    def real_parent(folder: str) -> str:
        """realpath of a destination's folder, resolved once per folder: nothing changes
        while the plan is made, and a revision's files share few folders."""
        if folder not in real_parents:
            real_parents[folder] = os.path.realpath(folder)
        return real_parents[folder]

    def check_inside_instance(source: str, target: str, link: Optional[bool] = None) -> None:
        """With fs_root, nothing is placed through a link leading out of the instance's
        folder, and no link is installed that would point out of it. `link`: whether the
        source is a symlink, when the caller knows."""
        if base is None:
            return
        parent = real_parent(os.path.dirname(target))
        if not _within(parent, base):
            raise InstallError(
                "%s is reached through a symbolic link leading outside the instance folder %s "
                "(to %s); nothing is installed through it. Remove the link, or install to "
                "another destination." % (target, fs_root, parent)
            )
        if os.path.islink(source) if link is None else link:
            target_link = os.readlink(source)
            if os.path.isabs(target_link) or not _within(
                os.path.normpath(os.path.join(parent, target_link)), base
            ):
                raise InstallError(
                    "The symbolic link %s -> %s in the revision, installed at %s, would point "
                    "outside the instance folder %s. Make the link point inside the instance, "
                    "or install it deeper." % (source, target_link, target, fs_root)
                )

    def normal_copy(source: str, destination: str, link: Optional[bool] = None) -> None:
        check_inside_instance(source, destination, link)
        if plan.exists(destination):
            if file_exists_behavior == "DISALLOW":
                raise InstallError(
                    "A file already exists at %s, which this revision installs, and "
                    "file_exists_behavior is DISALLOW. Remove the file, or deploy with "
                    "file_exists_behavior OVERWRITE (replace it) or RETAIN (keep it)." % destination
                )
            if file_exists_behavior == "RETAIN":
                return
            if file_exists_behavior != "OVERWRITE":
                raise InstallError(
                    "Invalid file_exists_behavior %r; valid options are DISALLOW, OVERWRITE, "
                    "RETAIN." % file_exists_behavior
                )
            if os.path.isdir(destination) and not os.path.islink(destination):
                raise InstallError(
                    "OVERWRITE cannot replace the directory %s with the file %s; remove the "
                    "directory or change the destination." % (destination, source)
                )
        plan.copy(source, destination)

    def directory_copy(source: str, destination: str) -> None:
        check_inside_instance(source, destination)
        if not plan.is_dir(destination):
            plan.mkdir(destination)
        with os.scandir(source) as scan:  # the entries' types come with the listing
            entries = sorted(scan, key=lambda entry: entry.name)
        for entry in entries:
            entry_destination = os.path.join(destination, entry.name)
            if entry.is_dir(follow_symlinks=False):
                directory_copy(entry.path, entry_destination)
            else:
                normal_copy(entry.path, entry_destination, entry.is_symlink())

    for mapping in appspec.get("files") or []:
        source = os.path.normpath(ruby_join(archive_dir, str(mapping["source"])))
        if not _within(os.path.realpath(source), os.path.realpath(archive_dir)):
            raise InstallError(
                "The appspec installs %s, which is outside the revision (%s); only the "
                "revision's files are installed. Fix the source path in the files section."
                % (mapping["source"], source)
            )
        destination = place(str(mapping["destination"]), fs_root)
        if os.path.isdir(source) and not os.path.islink(source):
            plan.fill_in_missing_ancestors(destination)
            directory_copy(source, destination)
        else:
            if not os.path.lexists(source):
                raise InstallError(
                    "The appspec installs %s, which does not exist in the revision (%s). Fix "
                    "the source path in the files section." % (mapping["source"], source)
                )
            target = os.path.join(destination, os.path.basename(source))
            plan.fill_in_missing_ancestors(target)
            normal_copy(source, target)

    for permission in appspec.get("permissions") or []:
        _plan_permission(plan, permission, fs_root)
    return plan


def _within(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip("/") + "/")


def _plan_permission(plan: _Plan, permission: Dict, fs_root: Optional[str]) -> None:
    obj = place(str(permission["object"]), fs_root)
    types = permission.get("type") or ["file", "directory"]
    if obj in plan.copy_targets:
        if "file" not in types:
            return
        if (permission.get("pattern") or "**") != "**":
            raise InstallError(
                "Permissions for %s give pattern %r, but %s is a file: patterns only apply "
                "to directories. Remove the pattern." % (obj, permission.get("pattern"), obj)
            )
        if permission.get("except"):
            raise InstallError(
                "Permissions for the file %s give except %r; except only applies to "
                "directories. Remove it." % (obj, permission.get("except"))
            )
        _check_file_acl(permission, obj)
        _set_permissions(plan, obj, permission)
    elif obj in plan.mkdir_targets or plan.is_dir(obj):
        found = []
        if "file" in types:
            for path in plan.copy_targets:
                if perms.matches(permission, obj, path):
                    _check_file_acl(permission, path)
                    found.append(path)
        if "directory" in types:
            found += [p for p in plan.mkdir_targets if perms.matches(permission, obj, p)]
        for path in found:
            _set_permissions(plan, path, permission)


def _check_file_acl(permission: Dict, path: str) -> None:
    if perms.has_default_acl(permission.get("acls")):
        raise InstallError(
            "A default ACL (d: or default:) is set for the file %s; default ACLs apply to "
            "directories only. Remove it or narrow `type` to directory." % path
        )


def _set_permissions(plan: _Plan, path: str, permission: Dict) -> None:
    if path in plan.permission_targets:
        raise InstallError(
            "Permissions for %s are given more than once in the appspec; keep one entry "
            "that matches it." % path
        )
    plan.permission_targets.add(path)
    if permission.get("mode") is not None:
        plan.commands.append({"type": "chmod", "mode": permission["mode"], "file": path})
    if permission.get("acls") is not None:
        _require_tool("setfacl", "acls")
        for entry in permission["acls"]:
            _check_acl_entry(str(entry), path)
        plan.commands.append({"type": "setfacl", "acl": list(permission["acls"]), "file": path})
    if permission.get("context") is not None:
        _require_tool("semanage", "context")
        _require_tool("restorecon", "context")
        plan.commands.append({"type": "semanage", "context": permission["context"], "file": path})
    owner, group = permission.get("owner"), permission.get("group")
    if owner is not None or group is not None:
        uid = _uid(owner, path) if owner is not None else -1
        gid = _gid(group, path) if group is not None else -1
        plan.commands.append(
            {"type": "chown", "owner": owner, "group": group, "file": path, "uid": uid, "gid": gid}
        )


_ACL_TYPES = {"u": "user", "user": "user", "g": "group", "group": "group"}
_ACL_TYPES.update({"m": "mask", "mask": "mask", "o": "other", "other": "other"})


def _check_acl_entry(entry: str, path: str) -> None:
    """An ACL entry setfacl would reject fails here, before the previous install is removed:
    its form (`[default:]user|group|mask|other:<name>:<perms>`) and the user or group it
    names, which only this host can resolve."""
    parts = entry.split(":")
    fix = "fix `acls` in the permissions section (e.g. user:bob:rw-, default:group:ops:r-x)"
    if parts[:1] in (["d"], ["default"]):
        parts = parts[1:]
    kind = _ACL_TYPES.get(parts[0]) if len(parts) == 3 else None
    perms = parts[-1] if parts else ""
    digit = len(perms) == 1 and "0" <= perms <= "7"
    if kind is None or not (digit or (0 < len(perms) <= 3 and set(perms) <= set("rwx-"))):
        raise InstallError("The ACL entry %r for %s is not a valid entry: %s." % (entry, path, fix))
    name = parts[1]
    if not name or name.isdigit() or kind in ("mask", "other"):
        return
    try:
        if kind == "user":
            pwd.getpwnam(name)
        else:
            grp.getgrnam(name)
    except KeyError:
        raise InstallError(
            "The ACL entry %r for %s names the %s %r, which does not exist on this host; "
            "create the %s or %s." % (entry, path, kind, name, kind, fix)
        ) from None


def _require_tool(tool: str, key: str) -> None:
    """Permissions that need a tool fail before anything is installed when it is missing."""
    if shutil.which(tool) is None:
        package = {"setfacl": "acl"}.get(tool, "policycoreutils-python-utils")
        raise InstallError(
            "The appspec sets `%s` in its permissions, which needs `%s`; it is not installed on "
            "this host (package %s)." % (key, tool, package)
        )


def _uid(owner: str, path: str) -> int:
    try:
        return pwd.getpwnam(str(owner)).pw_uid
    except KeyError:
        raise InstallError(
            "The owner %r for %s is not a user on this host; create the user or fix `owner` "
            "in the permissions section." % (owner, path)
        ) from None


def _gid(group: str, path: str) -> int:
    try:
        return grp.getgrnam(str(group)).gr_gid
    except KeyError:
        raise InstallError(
            "The group %r for %s is not a group on this host; create the group or fix "
            "`group` in the permissions section." % (group, path)
        ) from None


def _run(argv: List[str], check: bool = True) -> None:
    try:
        done = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True)
    except FileNotFoundError:
        if not check:
            return
        package = {"setfacl": "acl", "semanage": "policycoreutils-python-utils"}.get(argv[0])
        raise InstallError(
            "The appspec needs `%s`, which is not installed on this host%s."
            % (argv[0], " (package %s)" % package if package else "")
        ) from None
    if check and done.returncode != 0:
        raise InstallError(
            "`%s` failed with exit code %d: %s"
            % (" ".join(argv), done.returncode, (done.stderr or done.stdout).strip())
        )


def _copy(command: Dict) -> None:
    """A copy instruction. OVERWRITE replaces the destination path itself, never writing
    through it; the common case, a path the cleanup emptied, costs no extra system call."""
    source, destination = command["source"], command["destination"]
    if not hasattr(os, "sendfile"):  # pragma: no cover - Linux has it
        _unlink_if_present(destination)
        if os.path.islink(source):
            os.symlink(os.readlink(source), destination)
        else:
            shutil.copy2(source, destination)
            _copy_owner(os.stat(source), destination)
        return
    try:
        source_fd = os.open(source, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as error:  # ELOOP: a symlink, installed as a symlink
        if error.errno not in (errno.ELOOP, errno.EMLINK) or not os.path.islink(source):
            raise
        link = os.readlink(source)
        try:
            os.symlink(link, destination)
        except FileExistsError:
            os.unlink(destination)
            os.symlink(link, destination)
        return
    try:
        _copy_file(source_fd, source, destination)
    finally:
        os.close(source_fd)


def _unlink_if_present(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def _copy_file(source_fd: int, source: str, destination: str) -> None:
    """What shutil.copy2 does (content, mode, times, extended attributes) and, as root, the
    owner too, through the two files' descriptors: half of copy2's system calls, and none of
    a buffered file object's (the copies are most of an Install's work)."""
    st = os.fstat(source_fd)
    if not stat.S_ISREG(st.st_mode):
        _unlink_if_present(destination)
        shutil.copy2(source, destination)  # copy2's own refusal or handling
        _copy_owner(st, destination)
        return
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        target_fd = os.open(destination, flags, 0o600)
    except FileExistsError:  # O_EXCL: a link in the way is replaced, never written through
        os.unlink(destination)
        target_fd = os.open(destination, flags, 0o600)
    try:
        _copy_content(source_fd, target_fd, st.st_size)
        _copy_xattrs(source_fd, target_fd)
        os.fchmod(target_fd, stat.S_IMODE(st.st_mode))
        os.utime(target_fd, ns=(st.st_atime_ns, st.st_mtime_ns))
        _copy_owner(st, target_fd)
    finally:
        os.close(target_fd)


def _copy_content(source_fd: int, target_fd: int, size: int) -> None:
    """To the source's end: sendfile, or reads and writes where the file system has none."""
    offset = 0
    while True:
        wanted = max(size - offset, 1 << 20)
        try:
            sent = os.sendfile(target_fd, source_fd, offset, wanted)
        except OSError as error:
            if offset or error.errno not in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP):
                raise
            while True:
                chunk = os.read(source_fd, 1 << 20)
                if not chunk:
                    return
                view = memoryview(chunk)
                while view:
                    view = view[os.write(target_fd, view) :]
        offset += sent
        if sent == 0 or (sent < wanted and offset >= size):  # short of the request: the end
            return


def _copy_xattrs(source_fd: int, target_fd: int) -> None:
    """The extended attributes, as copy2 copies them (those the target refuses skipped)."""
    try:
        names = os.listxattr(source_fd)
    except OSError as error:
        if error.errno in (errno.ENOTSUP, errno.ENODATA, errno.EINVAL):
            return
        raise
    for name in names:
        try:
            os.setxattr(target_fd, name, os.getxattr(source_fd, name))
        except OSError as error:
            if error.errno not in (errno.EPERM, errno.ENOTSUP, errno.ENODATA, errno.EINVAL):
                raise


def _copy_owner(st: os.stat_result, target) -> None:
    """As root, the source's owner and group (a copy is otherwise root's)."""
    if os.geteuid() == 0:
        try:
            os.chown(target, st.st_uid, st.st_gid)
        except OSError:
            pass


def _execute(command: Dict, cleanup: CleanupWriter) -> None:
    kind = command["type"]
    if kind == "copy":
        cleanup.placed(command["destination"])
        _copy(command)
    elif kind == "mkdir":
        os.mkdir(command["directory"])
        cleanup.placed(command["directory"])
    elif kind == "chmod":
        if not os.path.islink(command["file"]):
            os.chmod(command["file"], int(command["mode"], 8))
    elif kind == "setfacl":
        if not os.path.islink(command["file"]):
            acl = perms.complete_acl(command["acl"], os.stat(command["file"]).st_mode)
            _run(["setfacl", "--set", ",".join(acl), command["file"]])
    elif kind == "semanage":
        context = command["context"]
        real = os.path.realpath(command["file"])
        argv = ["semanage", "fcontext", "-a"]
        if context.get("user"):
            argv += ["-s", context["user"]]
        argv += ["-t", context["type"]]
        if context.get("range"):
            argv += ["-r", context["range"]]
        _run([*argv, real])
        _run(["restorecon", "-v", real])
        cleanup.semanage(real)
    elif kind == "chown":
        os.lchown(command["file"], command["uid"], command["gid"])


class InstallReport:
    def __init__(self, plan: _Plan) -> None:
        self.files = len(plan.copy_targets)
        self.directories = len(plan.mkdir_targets)
        self.permissions = len(plan.permission_targets)

    def summary(self) -> str:
        return "installed %d files, created %d directories, set permissions on %d paths" % (
            self.files,
            self.directories,
            self.permissions,
        )


def install(
    root: DeploymentRoot,
    group_id: str,
    archive_dir: str,
    appspec: Dict,
    file_exists_behavior: str,
    fs_root: Optional[str] = None,
    should_stop: Callable[[], bool] = lambda: False,
) -> InstallReport:
    """Install a revision for a deployment group (docs/codedeploy-agent.md#install-phases).
    `should_stop` is asked before each copy, directory or permission: a stop leaves what was placed
    recorded in the cleanup file, which the next install replays first."""
    behavior = appspec.get("file_exists_behavior") or (file_exists_behavior or "DISALLOW").upper()
    os.makedirs(root.instructions_dir, exist_ok=True)
    cleanup_path = root.cleanup_file(group_id)
    cleanup_lines = read_cleanup(cleanup_path)
    check_cleanup(cleanup_lines, cleanup_path, root.install_json(group_id), fs_root)
    plan = plan_install(archive_dir, appspec, behavior, fs_root, simulate_cleanup(cleanup_lines))
    if should_stop():
        raise InstallStopped("Install stopped before it changed anything")
    replay_cleanup(cleanup_lines)
    if os.path.exists(cleanup_path):
        os.remove(cleanup_path)
    public = [{k: v for k, v in c.items() if k not in ("uid", "gid")} for c in plan.commands]
    write_atomically(root.install_json(group_id), json.dumps({"instructions": public}))
    with open(cleanup_path, "w", encoding="utf-8", errors="surrogateescape") as handle:
        cleanup = CleanupWriter(handle)
        for command in plan.commands:
            if should_stop():
                raise InstallStopped("Install stopped before %s" % command["type"])
            try:
                _execute(command, cleanup)
            except InstallError:
                raise
            except OSError as error:
                target = command.get("destination") or command.get("directory") or command["file"]
                raise InstallError(
                    "Install failed at %s (%s): %s" % (target, command["type"], error.strerror)
                ) from error
    return InstallReport(plan)
