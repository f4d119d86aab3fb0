"""HTML: keep the article, drop the furniture (menus, footers, scripts, cookie banners)."""

from __future__ import annotations

from pathlib import Path

from bs4 import BeautifulSoup, NavigableString, Tag

from spravka.core.types import Section
from spravka.ingest.loaders.base import LoadResult, RawDoc, read_text, register

_DROP = ("script", "style", "noscript", "nav", "footer", "header", "aside", "form", "iframe", "svg",
         "button", "template", "menu")
_DROP_HINTS = ("cookie", "banner", "breadcrumb", "navbar", "menu", "footer", "sidebar", "advert")
_HEADINGS = {"h1": 1, "h2": 2, "h3": 3, "h4": 4}
_BLOCKS = {"p", "li", "dd", "dt", "pre", "blockquote", "figcaption", "caption", "div", "section", "article",
           "main", "td", "th"}


def _is_furniture(tag: Tag) -> bool:
    attrs = " ".join([str(tag.get("id") or ""), " ".join(tag.get("class") or []), str(tag.get("role") or "")]).lower()
    return any(h in attrs for h in _DROP_HINTS)


def html_sections(markup: str) -> tuple[str, list[Section]]:
    soup = BeautifulSoup(markup, "lxml")
    title = soup.title.get_text(" ", strip=True) if soup.title else ""
    for tag in soup.find_all(_DROP):
        tag.decompose()
    for tag in soup.find_all(True):
        if tag.parent is not None and tag.name not in ("html", "body", "main", "article") and _is_furniture(tag):
            tag.decompose()
    root = soup.find("main") or soup.find("article") or soup.body or soup
    sections: list[Section] = []
    stack: list[tuple[int, str]] = []
    buf: list[str] = []
    h1 = ""

    def flush() -> None:
        text = "\n".join(x for x in buf if x).strip()
        if text:
            sections.append(Section(text=text, heading=" › ".join(h for _, h in stack)))
        buf.clear()

    def walk(node: Tag) -> None:
        nonlocal h1, stack
        for child in node.children:
            if isinstance(child, NavigableString):
                s = str(child).strip()
                if s and child.__class__.__name__ == "NavigableString":
                    buf.append(s)
                continue
            if not isinstance(child, Tag):
                continue
            name = child.name
            if name in _HEADINGS:
                text = child.get_text(" ", strip=True)
                flush()
                level = _HEADINGS[name]
                if level == 1 and not h1:
                    h1 = text
                    stack = []
                    continue
                stack = [(lv, h) for lv, h in stack if lv < level] + [(level, text)]
            elif name == "table":
                for tr in child.find_all("tr"):
                    cells = [c.get_text(" ", strip=True) for c in tr.find_all(["td", "th"])]
                    if any(cells):
                        buf.append(" | ".join(cells))
            elif name in ("ul", "ol"):
                for li in child.find_all("li", recursive=False):
                    buf.append("- " + li.get_text(" ", strip=True))
            elif name == "br":
                buf.append("")
            elif name in _BLOCKS and not child.find(list(_HEADINGS) + ["table", "ul", "ol", "p", "div"]):
                buf.append(child.get_text(" ", strip=True))
            else:
                walk(child)

    walk(root)
    flush()
    return (title or h1), sections


@register("html", ".html", ".htm")
def load_html(path: Path) -> LoadResult:
    text, enc = read_text(path)
    title, sections = html_sections(text)
    return LoadResult([RawDoc(sections=sections, title=title)], info={"encoding": enc})
