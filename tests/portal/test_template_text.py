"""Every word a template shows goes through the translation machinery (issue #14 item 2).

Each template under ``templates/`` is split with Django's own template lexer. Text inside
``{% translate %}`` / ``{% blocktranslate %}``, template tags and variables, comments,
``<script>`` and ``<style>`` is not the template's own words; what is left is parsed as
HTML, and any text node — or ``title``, ``placeholder``, ``aria-label``, ``alt`` value —
that holds a Latin word or a CJK character fails the test, unless the allow-list says why
it may stay as it is.
"""

import re
from html.parser import HTMLParser
from pathlib import Path

from django.conf import settings
from django.template.base import Lexer, TokenType

# Attributes a reader sees or hears; other attribute values (class, href, name…) are code.
VISIBLE_ATTRIBUTES = {"title", "placeholder", "aria-label", "alt"}

# Words that read the same in both languages. Keep this short and say why.
ALLOWED = {
    # The language switch names each language in its own script.
    "中文",
    "EN",
    # Codes and formats, written the same in Chinese and English.
    "HTTP",
    "CSV",
    "XLSX",
    "PDF",
    "API",
    "ID",
    "JSON",
    "URL",
    "GPU",
    "HMAC",
    "SHA",
    "TOTP",
    "PNG",
    "JPEG",
}

# Whole texts that are notation, not words: the ranking's formula over its column symbols
# (the headers "Weight (w)" and "Maximum points (max)" are translated) and a month format.
ALLOWED_TEXTS = {"w × max", "YYYY-MM"}

# Templates that are not ours to translate: drf-spectacular's Swagger page (its only text
# is the library's own default title).
SKIPPED = {"drf_spectacular/swagger_ui.html"}

WORD = re.compile(r"[A-Za-z]+(?:['’-][A-Za-z]+)*|[\u3400-\u9fff\uf900-\ufaff]+")
# A tag or a variable becomes a space: it is not the template's own text, and a space keeps
# ``<li{% if x %} class="unread"{% endif %}>`` a well-formed HTML tag.
HOLE = " "


def template_text(source: str) -> str:
    """The template with every tag, variable, comment and translated text made a HOLE."""
    out: list[str] = []
    depth = 0  # inside {% blocktranslate %} or {% comment %}
    for token in Lexer(source).tokenize():
        if token.token_type == TokenType.BLOCK:
            name = token.contents.split()[0] if token.contents else ""
            if name in {"blocktranslate", "blocktrans", "comment", "verbatim"}:
                depth += 1
            elif name in {"endblocktranslate", "endblocktrans", "endcomment", "endverbatim"}:
                depth -= 1
            out.append(HOLE)
        elif token.token_type == TokenType.TEXT and depth == 0:
            out.append(token.contents)
        else:
            out.append(HOLE)
    return "".join(out)


class _Scanner(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.found: list[str] = []
        self._skip = 0  # inside <script> or <style>

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in {"script", "style"}:
            self._skip += 1
        for name, value in attrs:
            if name in VISIBLE_ATTRIBUTES and value:
                self._check(value, f"{tag}[{name}]")

    def handle_endtag(self, tag: str) -> None:
        if tag in {"script", "style"} and self._skip:
            self._skip -= 1

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self._check(data, "text")

    def _check(self, text: str, where: str) -> None:
        text = " ".join(text.split())
        if text in ALLOWED_TEXTS:
            return
        if [w for w in WORD.findall(text) if w not in ALLOWED]:
            self.found.append(f"{where}: {text!r}")


def untranslated(source: str) -> list[str]:
    """The user-visible texts of one template that no translation tag covers."""
    scanner = _Scanner()
    scanner.feed(template_text(source))
    scanner.close()
    return scanner.found


def test_every_template_text_is_translated():
    root = Path(settings.BASE_DIR) / "templates"
    problems = []
    for path in sorted(root.rglob("*.html")):
        name = path.relative_to(root).as_posix()
        if name in SKIPPED:
            continue
        problems += [f"{name}: {text}" for text in untranslated(path.read_text())]
    assert problems == []


def test_the_check_sees_bare_words_and_visible_attributes():
    # Written independently of the templates: what the check must and must not flag.
    assert untranslated("<h1>Programs</h1>") == ["text: 'Programs'"]
    assert untranslated("<p>申报项目</p>") == ["text: '申报项目'"]
    assert untranslated('<input placeholder="Search">') == ["input[placeholder]: 'Search'"]
    assert untranslated('<img alt="{% translate "Logo" %}" src="a.png">') == []
    assert untranslated("<h1>{% translate 'Programs' %}</h1>") == []
    assert untranslated("{% blocktranslate %}Hello {{ name }}{% endblocktranslate %}") == []
    assert untranslated("{# Note #}{% comment %}Draft{% endcomment %}<p>{{ x }}</p>") == []
    assert untranslated('<a class="button secondary" href="/x/">{{ label }}</a>') == []
    assert untranslated("<script>const label = 'Programs';</script><p>CSV · ¥</p>") == []
    assert untranslated("<p>{{ a }} of {{ b }}</p>") == ["text: 'of'"]
    assert untranslated('<li{% if x %} class="unread"{% endif %}>{{ n }}</li>') == []
    assert untranslated("<p>{% if a %}Yes{% endif %}</p>") == ["text: 'Yes'"]
    assert untranslated("<small>SHA-256 · w × max</small>") == ["text: 'SHA-256 · w × max'"]
