"""Sizes as people write them for bundle limits."""

from __future__ import annotations

import pytest

from engine.revision import parse_size


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("512", 512),
        ("2K", 2048),
        ("512M", 512 * 1024**2),
        ("4G", 4 * 1024**3),
        ("1.5GiB", 3 * 1024**3 // 2),
        ("10mb", 10 * 1024**2),
    ],
)
def test_parse_size(text: str, size: int) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["", "lots", "-1G", "0", "G"])
def test_parse_size_errors(text: str) -> None:
    with pytest.raises(ValueError, match="size"):
        parse_size(text)
