"""A user's script for the command balancer tests: HAProxy's runtime API from the shell.

python hactl.py SOCKET 'set server shop/web-a state drain'   # exit 1 if HAProxy objects
python hactl.py SOCKET --idle shop/web-a                     # exit 0 once no sessions
"""

from __future__ import annotations

import csv
import io
import socket
import sys


def ask(path: str, line: str) -> str:
    with socket.socket(socket.AF_UNIX) as s:
        s.connect(path)
        s.sendall(line.encode() + b"\n")
        chunks = []
        while data := s.recv(65536):
            chunks.append(data)
    return b"".join(chunks).decode()


def main() -> int:
    path, *rest = sys.argv[1:]
    if rest[0] == "--idle":
        backend, server = rest[1].split("/")
        rows = csv.DictReader(io.StringIO(ask(path, "show stat -1 4 -1").lstrip("# ")))
        scur = [int(r["scur"]) for r in rows if (r["pxname"], r["svname"]) == (backend, server)]
        print(f"sessions: {scur}")
        return 0 if scur == [0] else 1
    answer = ask(path, rest[0]).strip()
    print(answer)
    return 1 if answer else 0


if __name__ == "__main__":
    sys.exit(main())
