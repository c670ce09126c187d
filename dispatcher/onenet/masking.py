"""Keeping secrets out of messages: the api-key, the access key and a token's sign, masked as
``***`` wherever they stand as whole tokens in a text (raw, or percent-encoded as in a URL).

May import: nothing of dispatcher.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Final
from urllib.parse import quote

__all__ = ["Mask"]

# Characters a key can be made of (base64 and token alphabets): a key next to one of them is
# part of a longer word, not the key, and is left alone when masking.
_KEY_CHARS: Final = "A-Za-z0-9_+/=-"


def _pattern(secrets: tuple[str, ...]) -> re.Pattern[str] | None:
    """The secrets as whole tokens (also percent-encoded, as in a URL query), or None if none."""
    forms = {form for key in secrets for form in (re.escape(key), re.escape(quote(key, safe="")))}
    if not forms:
        return None
    # Longest first, so that a secret is masked whole when another is a part of it.
    alternatives = "|".join(sorted(forms, key=lambda form: (-len(form), form)))
    # After "=" counts as a token start: a key is masked in "?api-key=KEY&...".
    return re.compile(rf"(?:(?<==)|(?<![{_KEY_CHARS}]))(?:{alternatives})(?![{_KEY_CHARS}])")


class Mask:
    """Masks a set of secrets (empty ones ignored) in texts."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self.secrets = tuple(dict.fromkeys(s for s in secrets if s))
        self._pattern = _pattern(self.secrets)

    def __call__(self, text: str) -> str:
        """``text`` with every secret masked where it stands as a whole token."""
        pattern = self._pattern
        if pattern is None or ("%" not in text and not any(s in text for s in self.secrets)):
            return text
        return pattern.sub("***", text)
