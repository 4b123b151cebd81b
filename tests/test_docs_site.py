"""The documentation site as a person sees it (issue 31): three pages at 1,280 x 800 in headless Chromium.

The site is built once (``mkdocs build --strict``) and one browser opens the home page, the analysts'
page and the CLI reference. On each, no table and no code block (``pre``) of the article is cut: it
fits its box, or it sits in a box that scrolls sideways (``overflow-x: auto`` or ``scroll`` on it, an
ancestor inside the article, or inside it) that itself stays inside the article; nothing of the article
outside such a box reaches past the window's right edge; and content that could show whole (at most
``WHOLE`` px: a CLI help block, a table whose cells wrap) is not put behind a scroll bar by a narrow
column (the readthedocs theme's 800 px column did that to every CLI help block, the home page's table
and the analysts' SQL). A full-page screenshot of each page is saved beside the built site.

Chromium is Debian's (``/usr/bin/chromium``, ``apt-get install chromium``; ``.ci/run`` installs it; another
one: ``L2RULES_TEST_CHROMIUM=PATH``),
driven by the ``playwright`` package of the dev extra (its own browser downloads are not used). Without
either the test skips, except in CI (CI=true), where it fails.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import IN_CI, REPO

CHROMIUM = os.environ.get("L2RULES_TEST_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
VIEWPORT = {"width": 1280, "height": 800}
PAGES = {"index": "index.html", "analysts": "analysts/index.html", "cli": "cli/index.html"}

#: Content up to this wide (argparse's help at 100 columns is 840 px, a table whose cells wrap) shows
#: whole at 1,280 px; only wider content (a psql result 200 characters wide) may scroll.
WHOLE = 900

#: Run in the page: what of the article is cut or reaches past the window, one sentence each.
LAYOUT = """([whole]) => {
  const article = document.querySelector('article') || document.querySelector('[role="main"]')
      || document.querySelector('main');
  if (!article) return ['no article element on the page'];
  const width = document.documentElement.clientWidth;
  const limit = Math.min(article.getBoundingClientRect().right, width);
  const scrolls = el => {  // a box that scrolls sideways (an inline element, say code in a sentence, does not)
    const style = getComputedStyle(el);
    return ['auto', 'scroll'].includes(style.overflowX) && style.display !== 'inline';
  };
  const scroller = el => {
    for (let e = el; e && e !== article; e = e.parentElement) if (scrolls(e)) return e;
    return null;
  };
  const name = el => {
    const text = (el.innerText || '').trim().split('\\n')[0].slice(0, 60);
    return `<${el.tagName.toLowerCase()}> "${text}"`;
  };
  const problems = [];
  for (const el of article.querySelectorAll('table, pre')) {
    const r = el.getBoundingClientRect();
    if (!r.width) continue;  // not displayed
    // the boxes that scroll it: an ancestor (or itself), or inside it (a pre's code)
    const boxes = [...el.querySelectorAll('*')].filter(scrolls);
    if (scroller(el)) boxes.push(scroller(el));
    if (!boxes.length) {
      if (el.scrollWidth > el.clientWidth + 1)
        problems.push(`${name(el)} is cut: ${el.scrollWidth} px of content in ${el.clientWidth} px, no scroll box`);
      else if (r.right > limit + 1)
        problems.push(`${name(el)} ends at ${Math.round(r.right)} px, past the article or the window `
                      + `(${Math.round(limit)} px)`);
    }
    for (const box of boxes) {
      const right = box.getBoundingClientRect().right;
      const outermost = !(box.parentElement && scroller(box.parentElement));  // inner ones are clipped by it
      if (outermost && right > limit + 1) {
        problems.push(`${name(el)} scrolls in a box that ends at ${Math.round(right)} px, past the article `
                      + `or the window (${Math.round(limit)} px)`);
        break;
      }
      if (box.scrollWidth > box.clientWidth + 1 && box.scrollWidth <= whole) {
        problems.push(`${name(el)} shows ${box.clientWidth} px of its ${box.scrollWidth}: it would fit `
                      + `${whole} px, yet it has to be scrolled`);
        break;
      }
    }
  }
  for (const el of article.querySelectorAll('*')) {
    if (el.parentElement && scroller(el.parentElement)) continue;  // inside a box that scrolls: checked above
    const r = el.getBoundingClientRect();
    if (r.width && r.right > width + 1)
      problems.push(`${name(el)} reaches ${Math.round(r.right)} px, past the window's ${width} px`);
  }
  return problems;
}"""


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    """The site, built once for the module."""
    out = tmp_path_factory.mktemp("site")
    mkdocs = Path(sys.executable).parent / "mkdocs"
    proc = subprocess.run([str(mkdocs), "build", "--strict", "--quiet", "--site-dir", str(out / "site")],
                          capture_output=True, text=True, cwd=REPO)
    assert proc.returncode == 0, proc.stderr
    return out


@pytest.fixture(scope="module")
def browser():
    """One headless Debian Chromium for the module's pages."""
    problem = None
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as exc:
        problem = f"the playwright package is missing (pip install -e '.[dev]'): {exc}"
    if problem is None and not Path(CHROMIUM).exists():
        problem = f"Chromium not found at {CHROMIUM} (apt-get install chromium)"
    if problem:
        if IN_CI:
            pytest.fail(problem)
        pytest.skip(problem)
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        yield chromium
        chromium.close()


def test_no_table_or_code_block_is_cut_at_1280_px(browser, site):
    page = browser.new_page(viewport=VIEWPORT)
    # the site is read offline: a request that leaves the built files (a web font, say) is refused
    page.route("**/*", lambda route: route.continue_() if route.request.url.startswith("file:")
               else route.abort())
    problems = []
    for name, path in PAGES.items():
        page.goto((site / "site" / path).as_uri(), wait_until="load")
        assert page.locator("article table, article pre, [role=main] table, [role=main] pre").count(), name
        problems += [f"{path}: {p}" for p in page.evaluate(LAYOUT, [WHOLE])]
        shot = site / f"{name}.png"
        page.screenshot(path=str(shot), full_page=True)
        assert shot.stat().st_size > 0, shot
    page.close()
    assert not problems, "\n".join(problems)
