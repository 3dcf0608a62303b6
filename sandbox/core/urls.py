"""URLs as a browser reads them (the WHATWG URL Standard's first steps), for links the sandbox shows or follows.

A check of the scheme by name is not enough: a browser first strips leading and trailing C0 controls and
spaces, removes every tab and newline anywhere, and lowercases the scheme, so "java\\tscript:alert(1)",
" javascript:" and "JaVaScRiPt:" are all javascript: to it. `browser_view` does those steps and nothing
more; `return_url_problem` says why a URL must not be a merchant's returnUrl (None when it may be).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import urlsplit

#: What a browser strips from both ends of a URL (U+0000 to U+0020: C0 controls and space).
C0_CONTROL_OR_SPACE = "".join(chr(code) for code in range(0x21))
#: What a browser removes anywhere in a URL before reading it.
TAB_OR_NEWLINE = re.compile("[\t\n\r]")
#: A scheme: an ASCII letter, then ASCII letters, digits, "+", "-" and "." (WHATWG scheme state).
SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*", re.ASCII)
#: C0 controls and DEL: a real URL never holds one; a browser drops or encodes them.
CONTROL = re.compile("[\x00-\x1f\x7f]")

WEB_SCHEMES = frozenset({"http", "https"})
#: Schemes that run script, read local or other-origin data, or open browser internals: never a link target.
#: Every other well-formed scheme is an app's own (myapp://, com.example.shop:, intent:), which the
#: ePayment docs allow for a returnUrl ("https:// or a custom URL scheme").
NEVER_LINKED = frozenset({
    "javascript", "vbscript", "livescript", "mocha", "data", "blob", "file", "filesystem", "about", "view-source",
    "jar", "mhtml", "ms-its", "mk", "res", "resource", "chrome", "chrome-extension", "chrome-untrusted",
    "chrome-search", "devtools", "edge", "opera", "brave", "moz-extension", "ms-browser-extension",
    "safari-extension", "webkit-extension", "javascript-blocked",
})


@dataclass(frozen=True, slots=True)
class BrowserView:
    """What a browser goes on with: the URL after its clean-up, and its scheme in lower case (None: relative)."""

    text: str
    scheme: str | None


def browser_view(url: str) -> BrowserView:
    """The URL after a browser's first steps: strip C0 controls and spaces at both ends, drop tabs and newlines
    everywhere, then read the scheme (up to the first ":") in lower case."""
    text = TAB_OR_NEWLINE.sub("", url.strip(C0_CONTROL_OR_SPACE))
    head, colon, _ = text.partition(":")
    scheme = head.lower() if colon and SCHEME.fullmatch(head) else None
    return BrowserView(text, scheme)


def return_url_problem(url: object) -> str | None:
    """Why `url` cannot be where the user is sent back (in plain words), or None when it can: an absolute
    http(s) URL with a host, or an app's custom scheme; never script, data, file or browser-internal URLs,
    and nothing a browser would read differently from the text given (controls, tabs, newlines, padding)."""
    if not isinstance(url, str) or not url:
        return "Must be a non-empty URL."
    if CONTROL.search(url) or url != url.strip(C0_CONTROL_OR_SPACE):
        return "Must not contain control characters, tabs or newlines, or start or end with whitespace."
    view = browser_view(url)
    if view.scheme is None:
        return "Must be an absolute URL: https:// or an app's custom scheme (myapp://...)."
    if view.scheme in NEVER_LINKED:
        return f"The {view.scheme}: scheme is not allowed: use https:// or an app's custom scheme."
    if view.scheme in WEB_SCHEMES:
        try:
            host = urlsplit(view.text).hostname
        except ValueError:
            host = None
        if not view.text[len(view.scheme) + 1:].startswith("//") or not host:
            return f"A {view.scheme} URL needs a host ({view.scheme}://shop.example.com/...)."
    return None


def is_safe_link(url: object) -> bool:
    """True when `url` may be linked to or redirected to from a sandbox page (the same rule as returnUrl)."""
    return return_url_problem(url) is None
