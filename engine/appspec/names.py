"""Suggesting the name a user probably meant ("hook" -> "hooks")."""

from __future__ import annotations

from collections.abc import Iterable


def closest(word: str, candidates: Iterable[str], cutoff: float = 0.6) -> str | None:
    """The candidate closest to `word`, compared case-insensitively, or None if none is close."""
    options = list(candidates)
    for option in options:
        if option.lower() == word.lower():
            return option
    import difflib  # a suggestion is made only for a name that is wrong

    by_lower = {option.lower(): option for option in options}
    match = difflib.get_close_matches(word.lower(), list(by_lower), n=1, cutoff=cutoff)
    return by_lower[match[0]] if match else None


def did_you_mean(word: str, candidates: Iterable[str], what: str = "keys") -> str:
    """A hint: "did you mean `hooks`?" or, with no close match, the list of valid names."""
    options = list(candidates)
    guess = closest(word, options)
    if guess is not None:
        return f"did you mean `{guess}`?"
    return f"valid {what}: {', '.join(options)}"
