"""The one exception the revision package raises."""

from pathlib import Path

from engine.host.bundle_model import UnsafeBundle


class BundleError(Exception):
    """A bundle that cannot be used, with a message naming the path, the member and the fix.

    ``reason`` is a short code: every ``UnsafeBundle.reason`` of ``engine.host.bundle_model``
    (absolute_path, link_outside, too_large...) plus this package's own (appspec_missing,
    appspec_not_file, appspec_too_large, appspec_encoding, bad_appspec_filename).
    """

    def __init__(
        self, message: str, *, reason: str, path: Path | None, member: str | None = None
    ) -> None:
        super().__init__(message)
        self.reason = reason
        self.path = path
        self.member = member

    @classmethod
    def from_unsafe(cls, error: UnsafeBundle, path: Path) -> "BundleError":
        """The host module's refusal, as this package's exception (raise it ``from error``)."""
        return cls(str(error), reason=error.reason, path=path, member=error.member)
