"""Check the built documentation as a reader sees it.

Serves ``docs/_build/html`` on localhost, opens the key pages in headless Chromium
(the rendered DOM, after JavaScript), keeps a screenshot of each, and fails on:

- a page that does not render its expected heading;
- an internal link (``href``) or image (``src``) on any built page whose target is
  not served (HTTP status other than 200), or an anchor (``#id``) missing from its
  target page.

Usage (after ``docs/build.sh``)::

    python docs/check_pages.py [--chromium /usr/bin/chromium] [--out docs/_build/screens]

Exits 1 with a list of the problems found.
"""

import argparse
import functools
import http.server
import shutil
import subprocess
import sys
import tempfile
import threading
import urllib.error
import urllib.parse
import urllib.request
from html.parser import HTMLParser
from pathlib import Path

HTML = Path(__file__).resolve().parent / "_build" / "html"

#: page (relative to the HTML root) -> text its rendered DOM must contain
PAGES = {
    "index.html": "Which training points are responsible for a prediction?",
    "user_guide.html": "User guide",
    "generated/skinfluence.InfluenceExplainer.html": "InfluenceExplainer",
    "auto_examples/plot_loo_digits.html": "leave-one-out",
}


class _Links(HTMLParser):
    """Collects link targets (href, src) and element ids of one page."""

    def __init__(self):
        super().__init__()
        self.targets, self.ids = [], set()

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if "id" in attrs:
            self.ids.add(attrs["id"])
        if tag == "a" and attrs.get("name"):
            self.ids.add(attrs["name"])
        for key in ("href", "src"):
            if attrs.get(key) and not (tag == "link" and attrs.get("rel") == "preload"):
                self.targets.append((tag, attrs[key]))


def _parse(text):
    parser = _Links()
    parser.feed(text)
    return parser


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


class _QuietServer(http.server.ThreadingHTTPServer):
    def handle_error(self, request, client_address):
        pass  # a browser closing a connection early is not a documentation problem


def _serve(root):
    handler = functools.partial(_QuietHandler, directory=str(root))
    server = _QuietServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}/"


@functools.cache
def _status(url):
    try:
        request = urllib.request.Request(url, method="HEAD")
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except (ValueError, OSError):  # malformed URL (e.g. an unrendered template)
        return None


def check_links(root, base):
    """Every internal href/src of every built page is served; anchors exist."""
    problems, ids = [], {}
    # built pages, not the theme's template fragments shipped in _static/
    pages = sorted(p for p in root.rglob("*.html")
                   if not p.relative_to(root).parts[0].startswith("_"))
    for page in pages:
        ids[page.resolve()] = _parse(page.read_text(encoding="utf-8")).ids
    for page in pages:
        rel = page.relative_to(root).as_posix()
        for tag, target in _parse(page.read_text(encoding="utf-8")).targets:
            parts = urllib.parse.urlsplit(target)
            if parts.scheme or target.startswith(("//", "mailto:", "javascript:")):
                continue  # external
            url = urllib.parse.urljoin(base + rel, target)
            if parts.path and _status(url.split("#")[0]) != 200:
                problems.append(f"{rel}: broken {tag} -> {target}")
                continue
            if parts.fragment and (tag == "a"):
                dest = (page.parent / parts.path).resolve() if parts.path else page
                if dest.suffix == ".html" and dest.resolve() in ids and \
                        urllib.parse.unquote(parts.fragment) not in ids[dest.resolve()]:
                    problems.append(f"{rel}: missing anchor -> {target}")
    return problems, len(pages)


def check_rendered(base, chromium, out):
    """Open each key page in headless Chromium: expected text, screenshot."""
    problems = []
    out.mkdir(parents=True, exist_ok=True)
    profile = tempfile.mkdtemp(prefix="chromium-profile-")
    flags = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
             "--no-first-run", "--disable-background-networking",
             "--disable-component-update", "--disable-sync",
             f"--user-data-dir={profile}", "--hide-scrollbars",
             "--window-size=1280,1600", "--virtual-time-budget=5000"]
    try:
        for page, expected in PAGES.items():
            url = base + page
            dom = subprocess.run(flags + ["--dump-dom", url], capture_output=True,
                                 text=True, timeout=120).stdout
            if expected.lower() not in dom.lower():
                problems.append(f"{page}: rendered page lacks {expected!r}")
            for tag, target in _parse(dom).targets:
                if tag == "img" and not urllib.parse.urlsplit(target).scheme:
                    if _status(urllib.parse.urljoin(url, target)) != 200:
                        problems.append(f"{page}: image not served -> {target}")
            shot = out / (page.replace("/", "__").replace(".html", ".png"))
            subprocess.run(flags + [f"--screenshot={shot}", url], capture_output=True,
                           timeout=120)
            if not shot.exists() or shot.stat().st_size == 0:
                problems.append(f"{page}: no screenshot")
            else:
                print(f"screenshot: {shot}")
    finally:
        shutil.rmtree(profile, ignore_errors=True)
    return problems


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chromium", default=shutil.which("chromium") or "chromium")
    parser.add_argument("--out", type=Path, default=HTML.parent / "screens")
    args = parser.parse_args(argv)
    if not (HTML / "index.html").exists():
        sys.exit(f"no built documentation at {HTML}: run docs/build.sh first")
    server, base = _serve(HTML)
    try:
        problems, n_pages = check_links(HTML, base)
        problems += check_rendered(base, args.chromium, args.out)
    finally:
        server.shutdown()
    if problems:
        print("\n".join(problems))
        sys.exit(f"{len(problems)} documentation problem(s) found")
    print(f"documentation OK: {n_pages} pages, links and images resolve, "
          f"{len(PAGES)} pages rendered in Chromium")


if __name__ == "__main__":
    main()
