#!/usr/bin/env python3
"""The console in a real browser (Debian's chromium, driven by Playwright; nothing downloaded).

  console_browser.py walk BASE OUTDIR
      Loads every page, runs three searches by typing them, opens an IP page and then a port
      page from the results by clicking, exports CSV; checks that the figures the page shows
      equal the API's, that no console error or CSP violation happened, and keeps screenshots.
  console_browser.py hostile BASE OUTDIR SPEC.json
      The injection test: SPEC names an IP, an organisation, a range, the hostile strings the
      lake holds in every attacker-controlled field, and searches that find them. Each page must
      show them as text (never markup: no element, attribute or script from them), with control
      characters and bidi overrides visibly escaped, under a strict CSP.

Prints one JSON line of what it checked; exits non-zero on the first failure.
"""
import csv
import io
import json
import sys
import urllib.request
from urllib.parse import quote

from playwright.sync_api import sync_playwright

ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--no-first-run", "--disable-dev-shm-usage"]


def fail(msg):
    print(f"FAIL: {msg}", file=sys.stderr)
    sys.exit(1)


def check(cond, msg):
    if not cond:
        fail(msg)


def api(base, path):
    with urllib.request.urlopen(base + path, timeout=60) as r:
        return json.loads(r.read())


def number(text):
    t = text.strip().replace(",", "")
    return None if t in ("—", "") else int(t)


class Browser:
    def __init__(self, p, base, outdir):
        self.base = base
        self.outdir = outdir
        self.b = p.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)
        self.ctx = self.b.new_context(viewport={"width": 1400, "height": 1000}, accept_downloads=True)
        self.page = self.ctx.new_page()
        self.errors = []
        self.expected_errors = 0
        self.page.on("console", lambda m: self.errors.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.errors.append(f"page error: {e}"))
        self.shots = 0
        self.loaded = []

    def ready(self):
        self.page.wait_for_selector("body[data-ready]", timeout=30000)
        state = self.page.get_attribute("body", "data-ready")
        return state

    def goto(self, path, expect="true"):
        resp = self.page.goto(self.base + path)
        check(resp is not None, f"{path}: no response")
        csp = resp.headers.get("content-security-policy", "")
        check("default-src 'none'" in csp and "script-src 'self'" in csp and "unsafe" not in csp,
              f"{path}: CSP {csp!r}")
        state = self.ready()
        check(state == expect, f"{path}: page state {state}: {self.page.inner_text('#alert')}")
        self.loaded.append(path)
        return resp

    def shot(self, name):
        self.shots += 1
        self.page.screenshot(path=f"{self.outdir}/{self.shots:02d}-{name}.png", full_page=True)

    def table(self, name):
        """The rows of a table section: a list of {column: cell text}."""
        return self.page.evaluate(
            """(name) => {
              const s = document.querySelector(`section[data-table="${name}"]`);
              if (!s) return null;
              const heads = [...s.querySelectorAll("thead th")].map((th) => th.textContent.trim());
              return [...s.querySelectorAll("tbody tr")].map((tr) =>
                Object.fromEntries([...tr.querySelectorAll("td")].map((td, i) => [heads[i], td.textContent])));
            }""",
            name,
        )

    def violations(self):
        return self.page.evaluate("window.__csp_violations || 0")

    def close(self):
        self.b.close()


def same_numbers(shown, rows, columns, what):
    check(shown is not None, f"{what}: table missing")
    check(len(shown) == len(rows), f"{what}: {len(shown)} rows shown, API has {len(rows)}")
    for i, (s, r) in enumerate(zip(shown, rows)):
        for c in columns:
            check(number(s[c]) == r[c], f"{what} row {i} {c}: shown {s[c]!r}, API {r[c]!r}")


def walk(base, outdir):
    out = {}
    with sync_playwright() as p:
        br = Browser(p, base, outdir)
        pg = br.page
        # Overview: the per-day figures and the distributions equal the API's.
        br.goto("/")
        br.shot("overview")
        ov = api(base, "/api/v1/overview")
        same_numbers(br.table("daily"), ov["tables"]["daily"]["rows"],
                     ["sources", "scanners", "wide_scanners", "malicious", "packets"], "overview daily")
        same_numbers(br.table("breadth"), ov["tables"]["breadth"]["rows"], ["source_days", "scanner_days"], "breadth")
        same_numbers(br.table("top_ports_by_sources"), ov["tables"]["top_ports_by_sources"]["rows"],
                     ["port", "packets", "sources", "scanners", "source_days"], "top ports")
        check(pg.locator("svg.chart").count() >= 2, "overview charts")
        out["overview_days"] = len(ov["tables"]["daily"]["rows"])

        for path, name in [("/orgs", "orgs"), ("/sensors", "sensors")]:
            br.goto(path)
            br.shot(name)
        sens = api(base, "/api/v1/sensors")
        same_numbers(br.table("sensors"), sens["tables"]["sensors"]["rows"], ["packets", "lost"], "sensors")
        orgs = api(base, "/api/v1/orgs")
        check(len(orgs["tables"]["orgs"]["rows"]) > 0, "the lab has organisations")
        org = orgs["tables"]["orgs"]["rows"][0]["org"]
        br.goto(f"/org/{quote(org)}")
        br.shot("org")
        ov_org = api(base, f"/api/v1/org/{quote(org)}")
        same_numbers(br.table("daily"), ov_org["tables"]["daily"]["rows"], ["ips", "wide_ips", "new_ips", "packets"], "org daily")

        # Three searches, typed as a person would: `/` focuses the box, Enter runs it.
        searches = ["scanner:true", "port:80 -scanner:true", "tag:wide_scanner OR tool:mirai"]
        out["searches"] = {}
        for i, q in enumerate(searches):
            br.goto("/")
            pg.keyboard.press("/")
            check(pg.evaluate("document.activeElement.id") == "q", "/ focuses the search box")
            pg.keyboard.type(q)
            with pg.expect_navigation():
                pg.keyboard.press("Enter")
            check(br.ready() == "true", f"search {q}")
            check(pg.input_value("#q") == q, f"the box keeps the query {q}")
            v = api(base, "/api/v1/search?q=" + quote(q))
            status = pg.inner_text("#status")
            check(status.startswith(f"{v['summary']['sources']:,} matching sources"), f"{q}: status {status!r}")
            shown = br.table("sources") or []
            want = v["tables"]["sources"]["rows"]
            check([r["ip"] for r in shown] == [r["ip"] for r in want], f"{q}: the IPs listed")
            same_numbers(shown, want, ["days", "packets", "ports", "breadth"], f"search {q}")
            facets = pg.evaluate("""() => [...document.querySelectorAll('section[data-facet="facet_port"] li')]
                                       .map((li) => li.childNodes[1].textContent.trim())""")
            check([number(x) for x in facets] == [r["sources"] for r in v["tables"]["facet_port"]["rows"]],
                  f"{q}: port facet {facets}")
            br.shot(f"search-{i}")
            out["searches"][q] = v["summary"]["sources"]

        # From the first search's results, an IP page, then one of its ports.
        br.goto("/search?q=" + quote(searches[0]))
        first = pg.locator('section[data-table="sources"] tbody tr td[data-col="ip"] a').first
        ip = first.inner_text()
        with pg.expect_navigation():
            first.click()
        check(br.ready() == "true", f"the IP page of {ip}")
        check(pg.url.split("?")[0].endswith(f"/ip/{ip}"), f"IP page URL {pg.url}")
        iv = api(base, f"/api/v1/ip/{ip}")
        for field, key in [("packets", "packets"), ("days seen", "days"), ("login attempts", "login_attempts")]:
            shown = pg.inner_text(f'dd[data-field="{field}"]')
            check(number(shown) == iv["summary"][key], f"IP {ip} {field}: {shown} vs {iv['summary'][key]}")
        check(pg.inner_text('dd[data-field="class"]') == iv["summary"]["class"], "class word")
        same_numbers(br.table("days"), iv["tables"]["days"]["rows"], ["packets", "port_count", "breadth"], f"IP {ip} days")
        br.shot("ip")
        port_link = pg.locator('section[data-table="ports"] tbody td[data-col="port"] a').first
        port_text = port_link.inner_text()
        with pg.expect_navigation():
            port_link.click()
        check(br.ready() == "true", "the port page")
        proto, port = pg.url.split("?")[0].split("/")[-2:]
        check(port == port_text, f"port page {pg.url} for {port_text}")
        pv = api(base, f"/api/v1/port/{proto}/{port}")
        for card, key in [("sources", "sources"), ("scanners", "scanners")]:
            shown = pg.inner_text(f'[data-card="{card}"] .v')
            check(number(shown) == pv["summary"][key], f"port {port} {card}: {shown} vs {pv['summary'][key]}")
        same_numbers(br.table("daily"), pv["tables"]["daily"]["rows"], ["packets", "sources", "scanners"], f"port {port} daily")
        br.shot("port")
        out["ip"] = ip
        out["port"] = f"{proto}/{port}"

        # CSV export of the search results, by clicking its link.
        br.goto("/search?q=" + quote(searches[0]))
        with pg.expect_download() as d:
            pg.locator('section[data-table="sources"] a[data-export="csv"]').click()
        path = d.value.path()
        rows = list(csv.DictReader(io.StringIO(open(path, encoding="utf-8").read())))
        v = api(base, "/api/v1/search?q=" + quote(searches[0]))
        check([r["ip"] for r in rows] == [r["ip"] for r in v["tables"]["sources"]["rows"]], "CSV rows")
        check([int(r["packets"]) for r in rows] == [r["packets"] for r in v["tables"]["sources"]["rows"]], "CSV packets")
        out["csv_rows"] = len(rows)

        # A bad query: the error names its column and shows a caret; the page still works.
        br.goto("/search?q=" + quote("port:23 prot:1"), expect="true")
        alert = pg.inner_text("#alert")
        check("column 9" in alert and "\n        ^" in alert, f"the error and its caret: {alert!r}")
        br.expected_errors += 1  # the browser logs the API's 400
        br.shot("bad-query")

        errors = [e for e in br.errors if "status of 400" not in e]
        check(not errors, f"console errors: {errors}")
        check(len(br.errors) == br.expected_errors, f"console errors: {br.errors}")
        out["pages"] = len(br.loaded)
        out["screenshots"] = br.shots
        br.close()
    print(json.dumps(out))


def hostile(base, outdir, spec_path):
    spec = json.load(open(spec_path, encoding="utf-8"))
    rng = f"from={spec['from']}&to={spec['to']}"
    hostile_strings = spec["strings"]
    out = {"pages": []}
    with sync_playwright() as p:
        br = Browser(p, base, outdir)
        pg = br.page
        pg.add_init_script("""window.__csp_violations = 0;
            document.addEventListener('securitypolicyviolation', () => { window.__csp_violations += 1; });""")
        paths = [f"/ip/{spec['ip']}?{rng}", f"/org/{quote(spec['org'], safe='')}?{rng}", f"/?{rng}", f"/orgs?{rng}"]
        paths += [f"/search?q={quote(q)}&{rng}" for q in spec["searches"]]
        for i, path in enumerate(paths):
            br.goto(path)
            br.shot(f"hostile-{i}")
            state = pg.evaluate("""() => {
              const all = [...document.querySelectorAll('*')];
              return {
                pwned: window.__pwned === 1,
                scripts: [...document.scripts].map((s) => s.src),
                handlers: all.flatMap((e) => [...e.attributes].filter((a) => a.name.startsWith('on')).map((a) => e.tagName + ' ' + a.name)),
                imgs: document.querySelectorAll('img, iframe, object, embed, svg image, form[action^="javascript"]').length,
                jsLinks: [...document.querySelectorAll('a[href]')].filter((a) => !a.getAttribute('href').startsWith('/')).map((a) => a.getAttribute('href')),
                text: document.body.textContent,
                title: document.title,
              };
            }""")
            check(not state["pwned"], f"{path}: a payload ran")
            check(state["scripts"] == [f"{base}/assets/app.js"], f"{path}: scripts {state['scripts']}")
            check(not state["handlers"], f"{path}: event handler attributes {state['handlers']}")
            check(state["imgs"] == 0, f"{path}: an embedded element appeared")
            check(not state["jsLinks"], f"{path}: links off this console {state['jsLinks']}")
            check(br.violations() == 0, f"{path}: CSP violations (something tried to run)")
            text = state["text"] + state["title"]
            for ch in ["\u202e", "\u202d", "\u2066", "\x1b", "\x07", "\u200f"]:
                check(ch not in text, f"{path}: a raw {ch!r} reached the page")
            out["pages"].append(path)
        # The IP page shows every hostile string, as text.
        br.goto(f"/ip/{spec['ip']}?{rng}")
        text = pg.evaluate("document.body.textContent")
        for s in hostile_strings:
            shown = visible(s)
            check(shown in text, f"the IP page does not show {s!r} as the text {shown!r}")
        check("\\u202e" in text and "\\u001b" in text, "escapes shown visibly")
        out["strings"] = len(hostile_strings)
        check(not br.errors, f"console errors: {br.errors}")
        br.close()
    print(json.dumps(out))


def visible(s):
    """What the page must show for s: control and bidi characters as \\uXXXX (the rule of app.js)."""
    def esc(c):
        o = ord(c)
        hidden = (o <= 0x08 or o in (0x0B, 0x0C) or 0x0E <= o <= 0x1F or 0x7F <= o <= 0x9F or o == 0x061C
                  or 0x200B <= o <= 0x200F or 0x2028 <= o <= 0x202E or 0x2060 <= o <= 0x2069 or o == 0xFEFF)
        return f"\\u{o:04x}" if hidden else c
    return "".join(esc(c) for c in s)


if __name__ == "__main__":
    if len(sys.argv) >= 4 and sys.argv[1] == "walk":
        walk(sys.argv[2], sys.argv[3])
    elif len(sys.argv) >= 5 and sys.argv[1] == "hostile":
        hostile(sys.argv[2], sys.argv[3], sys.argv[4])
    else:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
