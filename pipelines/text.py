"""Text helpers shared by the source parsers and the extraction stage.

    single_line("a\n  b")           -> "a b"
    one_line(exc)                    -> a problem message on one bounded line
    collapse_whitespace(text)        -> spaces collapsed within lines, blank lines dropped
    html_to_text("<p>a</p><p>b</p>") -> "a\nb"
    load_json(content)               -> json.loads that tolerates a BOM, invalid UTF-8, lone surrogates
"""

from __future__ import annotations

import json
import re
from typing import Any

from lxml import etree
from lxml import html as lxml_html

_BLOCK_TAGS = frozenset(
    "address article aside blockquote br dd div dl dt figcaption figure footer h1 h2 h3 h4 h5 h6 header hr "
    "li main nav ol p pre section table tbody td tfoot th thead tr ul".split()
)
_CONTROL_CHARS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_MAX_PROBLEM_CHARS = 300
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def single_line(text: str) -> str:
    """Every run of whitespace, line breaks included, becomes one space; ends stripped."""
    return " ".join(text.split())


def one_line(message: object) -> str:
    """A problem message on one line, bounded in length."""
    text = single_line(str(message))
    return text if len(text) <= _MAX_PROBLEM_CHARS else text[: _MAX_PROBLEM_CHARS - 1] + "…"


def collapse_whitespace(text: str) -> str:
    """Collapse runs of spaces within lines and drop blank lines (paragraphs become single lines)."""
    lines = (single_line(line) for line in text.splitlines())
    return "\n".join(line for line in lines if line)


def html_to_text(html: str | None) -> str | None:
    """Plain text of an HTML fragment: tags, comments, scripts and styles removed, entities
    decoded, block elements on their own lines. None for empty input or empty result."""
    if not html:
        return None
    if "<" not in html and "&" not in html:
        return collapse_whitespace(html) or None
    try:
        root = lxml_html.fragment_fromstring(_CONTROL_CHARS.sub("", html), create_parent="div")
    except (ValueError, etree.LxmlError):
        return collapse_whitespace(html) or None
    etree.strip_elements(root, "script", "style", etree.Comment, etree.ProcessingInstruction, with_tail=False)
    for element in root.iter():
        if isinstance(element.tag, str) and element.tag.lower() in _BLOCK_TAGS:
            # Separate block elements so "<p>a</p><p>b</p>" does not become "ab".
            element.tail = "\n" + (element.tail or "")
            element.text = "\n" + (element.text or "")
    return collapse_whitespace(root.text_content()) or None


def replace_surrogates(text: str) -> str:
    """Lone UTF-16 surrogates (U+D800-U+DFFF), which no UTF-8 store accepts, become U+FFFD."""
    return _LONE_SURROGATE.sub("\ufffd", text) if _LONE_SURROGATE.search(text) else text


def load_json(content: bytes | str) -> Any:
    """json.loads that tolerates a BOM and invalid UTF-8 (replacement characters), and turns
    lone surrogates ("\\ud800" escapes) in keys and values into U+FFFD."""
    if isinstance(content, bytes):
        try:
            return _scrub_surrogates(json.loads(content))
        except UnicodeDecodeError:
            content = content.decode("utf-8", errors="replace")
    return _scrub_surrogates(json.loads(content.lstrip("\ufeff")))


def _scrub_surrogates(doc: Any) -> Any:
    """replace_surrogates on every string of a decoded JSON document, in place (iterative:
    documents may nest as deep as json.loads allows)."""
    if isinstance(doc, str):
        return replace_surrogates(doc)
    stack = [doc]
    while stack:
        container = stack.pop()
        if isinstance(container, list):
            for index, value in enumerate(container):
                if isinstance(value, str):
                    container[index] = replace_surrogates(value)
                elif isinstance(value, list | dict):
                    stack.append(value)
        elif isinstance(container, dict):
            for key, value in container.items():
                if isinstance(value, str):
                    container[key] = replace_surrogates(value)
                elif isinstance(value, list | dict):
                    stack.append(value)
            if any(_LONE_SURROGATE.search(key) for key in container):
                pairs = [(replace_surrogates(key), value) for key, value in container.items()]
                container.clear()
                container.update(pairs)
    return doc
