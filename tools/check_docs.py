"""Open every page of the built docs in headless Chromium with the network cut off, and fail if
anything a reader would miss is missing.

    mkdocs build --strict --site-dir site && python tools/check_docs.py site

For each page (`*/index.html`): every request other than to the site's own files is blocked and
reported (a page must load nothing from the network); no formula is left as raw TeX (`\\(`,
`\\[`, `$$` or any `\\command` in the visible text, outside code); no MathML formula holds a TeX
command (latex2mathml copies a command it does not know, such as `\\arg`, into the MathML as text)
or a `mathvariant` style that browsers ignore (`\\mathcal N` shown as a plain N); every MathML
formula has a rendered size; no table is wider than its column at 1,280 px (a cut-off column);
every image has loaded (non-zero natural width); every API block written as `::: reference.name`
in the page's source rendered a documented object with its signature. Screenshots of two pages are written to
`<site>/_screenshots/` for the record. Uses Playwright's Python driver with the system's Chromium
(`/usr/bin/chromium`, Debian's `chromium` package; or `--chromium PATH`). Exit status 1 on any
problem, one line per problem.
"""

from __future__ import annotations

import argparse
import pathlib
import re
import sys

SCREENSHOTS = ("mdp/index.html", "trust_region/index.html")
TEX_COMMAND = re.compile(r"\\[A-Za-z]{2,}")


def source_blocks(docs: pathlib.Path, page: str) -> int:
    """The number of `::: reference.x` API blocks in the Markdown source of a built page."""
    name = "index.md" if page == "index.html" else page.replace("/index.html", ".md")
    src = docs / name
    return len(re.findall(r"^::: reference\.", src.read_text(), re.M)) if src.exists() else 0


def check(site: pathlib.Path, docs: pathlib.Path, chromium: str) -> list[str]:
    from playwright.sync_api import sync_playwright

    problems: list[str] = []
    pages = sorted(p.relative_to(site).as_posix() for p in site.rglob("index.html"))
    shots = site / "_screenshots"
    shots.mkdir(exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=chromium,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"],
        )
        context = browser.new_context(viewport={"width": 1280, "height": 900}, offline=True)
        for page_name in pages:
            page = context.new_page()
            external: list[str] = []

            def route(r, external=external):
                if r.request.url.startswith("file://"):
                    r.continue_()
                else:
                    external.append(r.request.url)
                    r.abort()

            page.route("**/*", route)
            page.goto((site / page_name).resolve().as_uri(), wait_until="load")
            for url in sorted(set(external)):
                problems.append(f"{page_name}: loads an external URL: {url}")
            text = page.inner_text("article") if page.query_selector("article") else page.inner_text("body")
            raw = [m for m in ("\\(", "\\[", "$$") if m in text]
            if raw:
                problems.append(f"{page_name}: a formula is left unrendered (raw {', '.join(raw)} in the text)")
            # TeX commands anywhere a reader sees text (navigation and table of contents included),
            # except in code blocks, where a backslash is code
            prose = page.evaluate(
                "(() => { const b = document.body.cloneNode(true);"
                " b.querySelectorAll('pre, code, math, script, style').forEach(e => e.remove());"
                " return b.innerText; })()"
            )
            for command in sorted(set(re.findall(TEX_COMMAND, prose))):
                problems.append(f"{page_name}: raw TeX in the text: {command}")
            in_math = page.evaluate(
                "Array.from(document.querySelectorAll('math')).map(m => [Array.from("
                " m.querySelectorAll('mi, mo, mn, mtext')).map(e => e.textContent).join(' '),"
                " Array.from(m.querySelectorAll('[mathvariant]')).map(e => e.getAttribute('mathvariant'))"
                ".filter(v => v !== 'normal')])"
            )
            left = sorted({c for text, _ in in_math for c in re.findall(TEX_COMMAND, text)})
            left += ["a backslash"] if not left and any("\\" in text for text, _ in in_math) else []
            if left:
                problems.append(f"{page_name}: TeX left inside the MathML: {', '.join(left)}")
            styles = sorted({v for _, variants in in_math for v in variants})
            if styles:
                problems.append(f"{page_name}: MathML styles the browser ignores: mathvariant={', '.join(styles)}")
            for where, wide, room in page.evaluate(
                "Array.from(document.querySelectorAll('article table')).map((t, i) =>"
                " [i + 1, t.scrollWidth, (t.closest('.md-typeset__scrollwrap') || t.parentElement).clientWidth])"
                ".filter(([i, w, r]) => w > r + 1)"
            ):
                problems.append(f"{page_name}: table {where} is {wide} px wide in a {room} px column (columns cut off)")
            for where, wide, room in page.evaluate(
                "Array.from(document.querySelectorAll('article .math-display')).map((d, i) =>"
                " [i + 1, d.scrollWidth, d.clientWidth]).filter(([i, w, r]) => w > r + 1)"
            ):  # a scroll box: the end of the formula stays hidden until the reader scrolls
                problems.append(f"{page_name}: display formula {where} is {wide} px wide in a {room} px column")
            unsized = page.evaluate(
                "Array.from(document.querySelectorAll('math')).filter(m => {"
                " const r = m.getBoundingClientRect(); return r.width === 0 || r.height === 0;"
                " }).filter(m => m.offsetParent !== null).length"
            )
            if unsized:
                problems.append(f"{page_name}: {unsized} MathML formulas have no rendered size")
            broken = page.evaluate(
                "Array.from(document.images).filter(i => !i.complete || i.naturalWidth === 0).map(i => i.src)"
            )
            for src in broken:
                problems.append(f"{page_name}: an image did not load: {src}")
            wanted = source_blocks(docs, page_name)
            found = page.evaluate("document.querySelectorAll('div.doc.doc-object').length")
            signatures = page.evaluate("document.querySelectorAll('.doc-signature').length")
            if found < wanted:
                problems.append(f"{page_name}: {wanted} API blocks in the source, {found} rendered")
            if wanted and signatures == 0:
                problems.append(f"{page_name}: the API blocks have no signatures")
            if page_name in SCREENSHOTS:
                page.screenshot(path=str(shots / (page_name.split("/")[0] + ".png")), full_page=False)
            page.close()
        browser.close()
    return problems


def main() -> None:
    class OneLineParser(argparse.ArgumentParser):  # a bad argument: one line, status 2
        def error(self, message: str):  # type: ignore[override]
            sys.stderr.write(f"check_docs.py: error: {message}\n")
            raise SystemExit(2)

    parser = OneLineParser(description="Check the built docs offline in headless Chromium.")
    parser.add_argument("site", help="the built site (mkdocs build --site-dir SITE)")
    parser.add_argument("--docs", default="docs", help="the Markdown sources (default docs/)")
    parser.add_argument("--chromium", default="/usr/bin/chromium", help="the Chromium binary")
    args = parser.parse_args()
    site, docs = pathlib.Path(args.site), pathlib.Path(args.docs)
    if not (site / "index.html").exists():
        sys.exit(f"check_docs.py: error: {site} has no index.html (build the site first)")
    if not pathlib.Path(args.chromium).exists():
        sys.exit(f"check_docs.py: error: no Chromium at {args.chromium} (apt-get install chromium)")
    problems = check(site, docs, args.chromium)
    for p in problems:
        print(p)
    pages = len(list(site.rglob("index.html")))
    print(f"check_docs: {pages} pages, {len(problems)} problems; screenshots in {site / '_screenshots'}")
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
