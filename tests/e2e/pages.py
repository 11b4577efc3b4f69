"""Read HTML pages as a person would: headings, alerts, tables, forms and the visible text.

A small tree is built with :class:`html.parser.HTMLParser` (the pages are our own templates
and the issuer's, both well-formed); the helpers below query it.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from html.parser import HTMLParser
from urllib.parse import urljoin

import httpx

VOID = frozenset({"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta"})
HIDDEN = frozenset({"script", "style", "head", "template"})
_SPACES = re.compile(r"\s+")


@dataclass(eq=False)  # elements compare by identity
class Element:
    """An element and its children (elements and text)."""

    tag: str
    attrs: dict[str, str] = field(default_factory=dict)
    children: list[Element | str] = field(default_factory=list)

    def iter(self) -> Iterator[Element]:
        """This element and every descendant element, in document order."""
        yield self
        for child in self.children:
            if isinstance(child, Element):
                yield from child.iter()

    def find_all(self, tag: str | None = None, *, cls: str | None = None) -> list[Element]:
        """Descendants with ``tag`` and the class ``cls`` (either may be omitted)."""
        return [
            element
            for element in self.iter()
            if (tag is None or element.tag == tag)
            and (cls is None or cls in element.attrs.get("class", "").split())
        ]

    def section(self, heading: str) -> Element:
        """The first innermost ``<section>`` or ``<div>`` inside this element whose first
        ``<h2>``/``<h3>`` reads ``heading``."""
        found = [
            element
            for element in self.iter()
            if element.tag in ("section", "div")
            and (headings := [h for h in element.iter() if h.tag in ("h2", "h3")])
            and headings[0].text() == heading
        ]
        innermost = [e for e in found if not any(e is not o and o in e.iter() for o in found)]
        if not innermost:
            raise AssertionError(f"no section {heading!r} in: {self.text()}")
        return innermost[0]

    def text(self) -> str:
        """The visible text, whitespace collapsed."""
        parts: list[str] = []
        self._collect(parts)
        return _SPACES.sub(" ", " ".join(parts)).strip()

    def _collect(self, parts: list[str]) -> None:
        if self.tag in HIDDEN:
            return
        for child in self.children:
            if isinstance(child, str):
                parts.append(child)
            else:
                child._collect(parts)


class _TreeBuilder(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Element("#document")
        self._open = [self.root]

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        element = Element(tag, {name: value or "" for name, value in attrs})
        self._open[-1].children.append(element)
        if tag not in VOID:
            self._open.append(element)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._open[-1].children.append(Element(tag, {name: value or "" for name, value in attrs}))

    def handle_endtag(self, tag: str) -> None:
        for depth in range(len(self._open) - 1, 0, -1):
            if self._open[depth].tag == tag:
                del self._open[depth:]
                return

    def handle_data(self, data: str) -> None:
        self._open[-1].children.append(data)


@dataclass(frozen=True)
class Form:
    """A form: where it posts and the values its fields hold."""

    action: str
    method: str
    fields: dict[str, str]


@dataclass
class Page:
    """An HTML answer: its address, status and tree."""

    url: str
    status: int
    root: Element

    @classmethod
    def of(cls, response: httpx.Response) -> Page:
        """Parse ``response``'s body."""
        builder = _TreeBuilder()
        builder.feed(response.text)
        builder.close()
        return cls(str(response.url), response.status_code, builder.root)

    @property
    def text(self) -> str:
        """Everything a reader sees on the page."""
        return self.root.text()

    @property
    def title(self) -> str:
        """The first ``<h1>``."""
        headings = self.root.find_all("h1")
        return headings[0].text() if headings else ""

    def alerts(self, kind: str | None = None) -> list[str]:
        """The texts of the alerts (``<p class="alert error">`` …), of one kind if given."""
        return [
            element.text()
            for element in self.root.find_all(cls="alert")
            if kind is None or kind in element.attrs.get("class", "").split()
        ]

    def section(self, heading: str) -> Element:
        """The innermost ``<section>`` or ``<div>`` whose first heading reads ``heading``."""
        return self.root.section(heading)

    def table_rows(self, within: Element | None = None) -> list[list[str]]:
        """The body rows of the tables (of ``within``, else of the page), cell texts."""
        scope = within or self.root
        return [
            [cell.text() for cell in row.find_all("td")]
            for body in scope.find_all("tbody")
            for row in body.find_all("tr")
        ]

    def definitions(self, within: Element | None = None) -> dict[str, str]:
        """The ``<dt>``/``<dd>`` pairs (of ``within``, else of the page)."""
        scope = within or self.root
        pairs: dict[str, str] = {}
        for entry in scope.find_all("dl"):
            for item in entry.children:
                if isinstance(item, Element):
                    terms, values = item.find_all("dt"), item.find_all("dd")
                    if terms and values:
                        pairs.setdefault(terms[0].text(), values[0].text())
        return pairs

    def form(self, action: str | None = None) -> Form:
        """The form posting to ``action`` (a path; the first form if ``None``)."""
        for element in self.root.find_all("form"):
            target = urljoin(self.url, element.attrs.get("action", ""))
            if action is None or target == urljoin(self.url, action):
                fields = {
                    field.attrs["name"]: field.attrs.get("value", "")
                    for field in element.find_all("input")
                    if "name" in field.attrs
                }
                return Form(target, element.attrs.get("method", "get").lower(), fields)
        raise AssertionError(f"no form posting to {action!r} on {self.url}: {self.text}")
