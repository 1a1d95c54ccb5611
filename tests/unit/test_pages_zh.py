"""The pages speak Chinese first (issue 15.10): ``<html lang="zh-CN">``, every string
zh-CN with its English after it, dates, times and numbers in Chinese conventions."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

STATIC = Path(__file__).resolve().parents[2] / "api" / "static"
CJK = re.compile(r"[\u4e00-\u9fff]")


class _Texts(HTMLParser):
    """Text nodes of <body> with whether an ancestor is marked ``lang="en"``."""

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[tuple[str, bool]] = []
        self.texts: list[tuple[str, bool, str]] = []
        self.lang: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "html":
            self.lang = a.get("lang")
        english = a.get("lang") == "en" or bool(self.stack and self.stack[-1][1])
        if tag not in ("meta", "link", "br"):
            self.stack.append((tag, english))

    def handle_endtag(self, tag: str) -> None:
        while self.stack:
            if self.stack.pop()[0] == tag:
                break

    def handle_data(self, data: str) -> None:
        text = data.strip()
        tags = [t for t, _ in self.stack]
        if text and "body" in tags and not {"script", "style"} & set(tags):
            self.texts.append((text, bool(self.stack and self.stack[-1][1]), tags[-1]))


def test_wallboard_html_is_chinese_first() -> None:
    parser = _Texts()
    parser.feed((STATIC / "wallboard.html").read_text(encoding="utf-8"))
    assert parser.lang == "zh-CN"
    assert parser.texts
    for text, english, tag in parser.texts:
        if english:
            continue
        if re.search(r"[A-Za-z]", text):
            # "中文 · English": Chinese first
            assert CJK.match(text) and " · " in text, \
                f"English text {text!r} in <{tag}> neither marked lang=en nor after Chinese"
        elif not re.fullmatch(r"[-:0-9 ]+", text):
            assert CJK.search(text), text
    # each English label follows its Chinese one
    html = (STATIC / "wallboard.html").read_text(encoding="utf-8")
    for m in re.finditer(r'>([^<>]*)<span class="en" lang="en">', html):
        assert CJK.search(m.group(1)), m.group(0)
    assert re.search(r"<title>[^<]*[\u4e00-\u9fff][^<]*</title>", html)


def test_wallboard_js_strings_are_chinese_first_with_english() -> None:
    js = (STATIC / "wallboard.js").read_text(encoding="utf-8")
    table = re.findall(r'^\s+(\w+): \["([^"]+)", "([^"]+)"\],', js, re.M)
    assert len(table) >= 20
    for key, zh, en in table:
        assert CJK.search(zh) and not CJK.search(en) and re.search(r"[A-Za-z]", en), key
    # events: each one a [Chinese, English] pair
    events = js[js.index("function renderEvent"):js.index("function onMessage")]
    pairs = re.findall(r"^\s+(\w+): \[(.*)$", events, re.M)
    assert len(pairs) == 16  # calls, partners, agents; callbacks (4)
    for name, first in pairs:
        assert CJK.search(first.split('",')[0] if '",' in first else first), name
    # every notice is bilingual
    for notice in re.findall(r'notice\("([^"]+)"', js):
        assert CJK.search(notice), notice


def test_dates_times_and_numbers_in_chinese_conventions() -> None:
    js = (STATIC / "wallboard.js").read_text(encoding="utf-8")
    assert 'const LOCALE = "zh-CN";' in js
    assert "new Intl.DateTimeFormat(LOCALE" in js and 'hourCycle: "h23"' in js
    assert 'weekday: "long"' in js  # 2026年3月2日星期一
    assert "new Intl.NumberFormat(LOCALE" in js
    # nothing formatted in the browser's own locale, nor counts by plain String()
    assert "toLocale" not in js
    assert not re.search(r"textContent = String\(", js)
