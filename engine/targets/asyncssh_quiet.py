"""asyncssh, imported without the warnings it makes newer cryptography releases raise.

asyncssh names DSA types that cryptography deprecates, and Python prints each such warning when
asyncssh is imported: they say nothing to an operator. They are silenced here, for asyncssh's
own modules only, before its first import: import asyncssh from this module.
"""

from __future__ import annotations

import warnings

from cryptography.utils import CryptographyDeprecationWarning

warnings.filterwarnings("ignore", category=CryptographyDeprecationWarning, module=r"asyncssh\.")

import asyncssh  # noqa: E402

__all__ = ["asyncssh"]
