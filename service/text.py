"""Text from outside (keys, bodies, URLs, AWS error messages) made safe to print on a terminal.

A key may hold any character, ESC, BEL and CR included; printed as it is, it could recolour the terminal, move
the cursor or hide the rest of the line. Every command that prints such text goes through `printable`, or
`shell_word` for a value the user is meant to paste into a shell. Text of any length is `cut` to a bound before it
reaches a log line or a message attribute (docs/security.md, "What reaches logs and terminals").
"""

from __future__ import annotations

import shlex


def printable(text: str) -> str:
    """`text` with every character that is not printable (control and format characters, line separators, lone
    surrogates) written as a Python escape, and `\\` doubled, so the output is unambiguous."""
    if text.isprintable() and "\\" not in text:
        return text
    return "".join(_escape(char) for char in text)


def cut(text: str, limit: int) -> str:
    """`text` if it has at most `limit` characters; else its first `limit`, then `…[cut N chars]`, where N is how
    many characters were left out."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}…[cut {len(text) - limit} chars]"


def shell_word(text: str) -> str:
    """`text` as one shell word that gives back exactly `text`: `shlex.quote` when it is printable, else bash's
    ANSI-C quoting (`$'...'`), which spells each byte of a control character as `\\xHH`, whatever the locale."""
    if text.isprintable():
        return shlex.quote(text)
    return "$'" + "".join(_shell_escape(char) for char in text) + "'"


def _shell_escape(char: str) -> str:
    if char in "\\'":
        return "\\" + char
    if char.isprintable():
        return char
    return "".join(f"\\x{byte:02x}" for byte in char.encode("utf-8", "surrogatepass"))


def _escape(char: str) -> str:
    if char == "\\":
        return "\\\\"
    if char.isprintable():
        return char
    code = ord(char)
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"
