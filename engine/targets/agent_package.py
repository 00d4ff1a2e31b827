"""The host agent as one file to ship: a zipapp of engine/host, named by its content hash.

`python3 deploydeck-agent-<sha>.pyz run` on a host runs `engine.host.protocol.main`. The zip is
built deterministically (sorted entries, fixed timestamps) so the same code always has the
same hash and a host that already has it is not sent it again.
"""

from __future__ import annotations

import functools
import hashlib
import io
import zipfile
from pathlib import Path

HOST_PACKAGE = Path(__file__).resolve().parent.parent / "host"
PACKAGE_NAME = "deploydeck_agent"
MAIN = f"import sys\nfrom {PACKAGE_NAME}.protocol import main\nsys.exit(main(sys.argv[1:]))\n"
_EPOCH = (1980, 1, 1, 0, 0, 0)


@functools.cache
def agent_zipapp() -> tuple[bytes, str]:
    """(zip bytes, sha256 hex) of the agent."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        entries = [("__main__.py", MAIN.encode())]
        for path in sorted(HOST_PACKAGE.glob("*.py")):
            if path.name == "__main__.py":
                continue
            entries.append((f"{PACKAGE_NAME}/{path.name}", path.read_bytes()))
        for name, data in entries:
            info = zipfile.ZipInfo(name, date_time=_EPOCH)
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, data)
    data = buffer.getvalue()
    return data, hashlib.sha256(data).hexdigest()
