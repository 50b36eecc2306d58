"""Screenshots of the built site in a real browser (Debian's chromium, headless), to look at it.

    make docs && python -m http.server -d site 8765 &
    python docs/scripts/screenshots.py http://127.0.0.1:8765 /tmp/shots

Needs `pip install playwright` (its Python package only: it drives /usr/bin/chromium, no
browser download). Takes the landing page, a guide, an API page and a search for "cardinality".
"""

import sys

from playwright.sync_api import sync_playwright

PAGES = {"home": "/", "guide": "/guides/finetuning/", "api": "/api/training/", "cli": "/api/cli/"}
CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def main(base, out):
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_FLAGS)
        page = browser.new_page(viewport={"width": 1280, "height": 1000})
        for name, path in PAGES.items():
            page.goto(base + path)
            page.screenshot(path=f"{out}/{name}.png")
        page.goto(base + "/")
        page.keyboard.press("/")  # Material's shortcut to the search box
        page.keyboard.type("cardinality")
        page.wait_for_selector(".md-search-result__item", timeout=15000)
        page.screenshot(path=f"{out}/search.png")
        browser.close()


if __name__ == "__main__":
    main(sys.argv[1].rstrip("/"), sys.argv[2])
