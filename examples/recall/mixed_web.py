"""Write a synthetic web corpus shaped like a real crawl slice, with known code pages, at any size.

    python examples/recall/mixed_web.py OUT_DIR [--seeds 40] [--pages 1800] [--seed 0]

writes ``OUT_DIR/web/part-0000{0..3}.jsonl`` (pages with ``url`` and ``text``), ``OUT_DIR/seeds.jsonl`` (positive
seed pages, all from two of the code domains), ``OUT_DIR/url_patterns.yaml`` (what an annotator would write for the
Q&A sites) and ``OUT_DIR/truth.json`` (code pages and code domains, for checking; the recall loop never reads it).
Deterministic from ``--seed``; every word comes from this file.

Unlike ``make_corpus.py`` (a dozen sentence templates per site, for the fast demo), pages here are drawn from a
Zipf-distributed lexicon of ~6,000 made-up words plus English function words, so no two pages share their sentences,
and code uses the same made-up words for its identifiers: what tells code from prose is its syntax, as on the web.
The layout: code Q&A and docs on 5 domains (in five different language mixes; the
seeds come from 2 of them), prose on 16 domains (tech news, gadget reviews and an IT help desk without code among
them), and 2 mixed domains (a general forum and a personal blog where a third of the posts are about programming).
Code domains also hold non-code pages (user profiles), as real Q&A sites do.
"""

from __future__ import annotations

import argparse
import bisect
import itertools
import json
import random
from pathlib import Path

FUNCTION_WORDS = ("the the the of of and and to to a a in in is is that it for was on are as with be at by this "
                  "have from or an they which one you had not but what all were when we there can been has more if "
                  "will their so no would who out up them some could than then its about into only other new these "
                  "two may any like our after first also did way even because most over such where much through "
                  "before back those very just how should well").split()
ONSETS = "b c d f g h j k l m n p r s t v w z bl br cl cr dr fl fr gl gr pl pr sc sk sl sp st tr th sh ch wh".split()
VOWELS = "a e i o u a e i o ai ea ou io ee oo".split()
CODAS = ["", "", "", "n", "r", "s", "t", "l", "m", "nd", "st", "rk", "ng", "x", "ck", "th"]

TOPICS = {  # prose domains: host, URL path, number of topic words
    "news": ("dailyherald.example", "/news/{i}/{slug}"), "travel": ("wanderlog.example", "/trips/{i}-{slug}"),
    "recipes": ("homekitchen.example", "/recipe/{i}"), "sports": ("matchday.example", "/report/{i}"),
    "garden": ("greenthumb.example", "/tips/{slug}-{i}"), "finance": ("moneywise.example", "/article/{i}"),
    "health": ("wellnesshub.example", "/read/{i}/{slug}"), "music": ("soundcheck.example", "/review/{i}"),
    "film": ("screenrant.example", "/film/{slug}-{i}"), "history": ("pastpages.example", "/essay/{i}"),
    "science": ("labnotes.example", "/story/{i}/{slug}"), "parenting": ("familytime.example", "/post/{i}"),
    "cars": ("autoworld.example", "/test-drive/{i}"), "pets": ("pawprints.example", "/advice/{i}-{slug}"),
    "technews": ("gadgetwire.example", "/news/{i}/{slug}"), "helpdesk": ("pchelp.example", "/questions/{i}/{slug}"),
}
# code domains: host, question path, main languages, kind of page
CODE_SITES = [
    ("stackqa.example", "/questions/{i}/{slug}", ("python", "javascript"), "qa"),
    ("pydocs.example", "/api/{slug}.html", ("python",), "docs"),
    ("javaforum.example", "/questions/{i}/{slug}", ("java", "c"), "qa"),
    ("dbanswers.example", "/questions/{i}/{slug}", ("sql", "shell"), "qa"),
    ("webdevtalk.example", "/t/{slug}/{i}", ("javascript", "shell", "python"), "qa"),
]
SEED_SITES = ("stackqa.example", "pydocs.example")
MIXED_SITES = [("generalforum.example", "/thread/{i}/{slug}", 0.3), ("janesblog.example", "/{slug}-{i}", 0.35)]
PROFILE_SHARE = 0.2  # code domains: share of user-profile (prose) pages
OTHER_LANGUAGE_SHARE = 0.25  # code pages in a language other than their site's main ones


class Words:
    """A made-up lexicon with Zipf frequencies, and per-topic word lists."""

    def __init__(self, seed: int, size: int = 6000):
        r = random.Random(seed)
        words: set[str] = set()
        while len(words) < size:
            words.add("".join(r.choice(ONSETS) + r.choice(VOWELS) + r.choice(CODAS)
                              for _ in range(r.choice((1, 2, 2, 2, 3, 3)))))
        self.words = sorted(words)
        r.shuffle(self.words)
        self.cum = list(itertools.accumulate(1 / (k + 20) for k in range(size)))  # Zipf with a flat head
        self.topics = {t: r.sample(self.words, 120) for t in [*TOPICS, "code", "forum", "blog"]}

    def word(self, r: random.Random) -> str:
        return self.words[bisect.bisect(self.cum, r.random() * self.cum[-1])]

    def sentence(self, r: random.Random, topic: str, lo: int = 6, hi: int = 22) -> str:
        out = []
        for _ in range(r.randint(lo, hi)):
            x = r.random()
            w = (r.choice(FUNCTION_WORDS) if x < 0.42 else r.choice(self.topics[topic]) if x < 0.6
                 else str(r.randint(2, 2025)) if x < 0.62 else self.word(r))
            out.append(w + ("," if r.random() < 0.06 else ""))
        out[0] = out[0].capitalize()
        return " ".join(out).rstrip(",") + r.choice(".........?!")

    def paragraph(self, r: random.Random, topic: str, lo: int = 2, hi: int = 6) -> str:
        return " ".join(self.sentence(r, topic) for _ in range(r.randint(lo, hi)))

    def ident(self, r: random.Random, style: str = "snake") -> str:
        a, b = self.word(r), r.choice(self.topics["code"])
        return {"snake": f"{a}_{b}", "camel": f"{a}{b.capitalize()}", "pascal": f"{a.capitalize()}{b.capitalize()}"
                }[style]


# --------------------------------------------------------------------------- code, in six languages
def python_code(w: Words, r: random.Random) -> str:
    f, a, b, v = w.ident(r), w.word(r), w.word(r), w.ident(r)
    body = [f"def {f}({a}, {b}=None):", f'    """{w.sentence(r, "code", 4, 10)}"""', f"    {v} = []",
            f"    for item in {a}:",
            f"        if item.{w.word(r)} {r.choice(['>', '==', '<', '!='])} {r.randint(0, 99)}:",
            f"            {v}.append(item)", f"    return {v}"]
    if r.random() < 0.5:
        body = [f"import {w.word(r)}", f"from {w.word(r)} import {w.ident(r)}", "", *body]
    if r.random() < 0.4:
        c = w.ident(r, "pascal")
        body += ["", "", f"class {c}:", f"    def __init__(self, {a}):", f"        self.{a} = {a}",
                 f"        self.{w.word(r)} = {{}}", "", f"    def {w.ident(r)}(self):",
                 f"        return len(self.{a})  # {w.sentence(r, 'code', 3, 8)}"]
    return "\n".join(body)


def javascript_code(w: Words, r: random.Random) -> str:
    f, v, m = w.ident(r, "camel"), w.word(r), w.word(r)
    lines = [f"const {v} = require('{m}');", f"async function {f}(id, opts = {{}}) {{",
             f"  const res = await {v}.get(`/api/{w.word(r)}/${{id}}`, opts);",
             f"  if (!res.ok) throw new Error('{w.sentence(r, 'code', 3, 6)}');",
             f"  return res.data.map((x) => x.{w.word(r)});", "}", f"{f}({r.randint(1, 99)}).then(console.log);"]
    if r.random() < 0.4:
        lines += [f"document.querySelector('#{w.word(r)}').addEventListener('click', () => {{",
                  f"  {w.ident(r, 'camel')}.classList.toggle('{w.word(r)}');", "});"]
    return "\n".join(lines)


def java_code(w: Words, r: random.Random) -> str:
    c, m, v = w.ident(r, "pascal"), w.ident(r, "camel"), w.word(r)
    return "\n".join([f"import java.util.{r.choice(['List', 'Map', 'ArrayList', 'HashMap'])};", "",
                      f"public class {c} {{", f"    private final Map<String, Integer> {v} = new HashMap<>();", "",
                      f"    public int {m}(List<String> {w.word(r)}) {{", "        int total = 0;",
                      f"        for (String s : {w.word(r)}) {{", f"            total += {v}.getOrDefault(s, 0);",
                      "        }", f'        System.out.println("{w.word(r)}: " + total);', "        return total;",
                      "    }", "}"])


def c_code(w: Words, r: random.Random) -> str:
    f, v = w.ident(r), w.word(r)
    return "\n".join(["#include <stdio.h>", "#include <stdlib.h>", "",
                      f"static int {f}(const int *{v}, size_t n) {{", "    int acc = 0;",
                      "    for (size_t i = 0; i < n; i++) {",
                      f"        if ({v}[i] > {r.randint(0, 50)}) acc += {v}[i];",
                      "    }", "    return acc;", "}", "", "int main(void) {",
                      f"    int buf[] = {{{', '.join(str(r.randint(0, 99)) for _ in range(4))}}};",
                      f'    printf("%d\\n", {f}(buf, 4));', "    return 0;", "}"])


def sql_code(w: Words, r: random.Random) -> str:
    t1, t2, c = w.word(r), w.word(r), w.word(r)
    return "\n".join([f"SELECT a.{c}, COUNT(*) AS n, MAX(b.{w.word(r)})", f"FROM {t1} a",
                      f"JOIN {t2} b ON b.{t1}_id = a.id", f"WHERE a.{w.word(r)} > {r.randint(1, 500)}",
                      f"  AND b.{w.word(r)} IS NOT NULL", f"GROUP BY a.{c}", "ORDER BY n DESC", "LIMIT 20;"])


def shell_code(w: Words, r: random.Random) -> str:
    cmds = [f"for f in {w.word(r)}/*.log; do grep -c ERROR \"$f\"; done",
            f"export {w.word(r).upper()}_HOME=\"$HOME/.{w.word(r)}\"",
            f"tar -czf {w.word(r)}-$(date +%F).tgz /var/lib/{w.word(r)}", f"sudo systemctl restart {w.word(r)}",
            f"curl -s https://{w.word(r)}.example/api | jq '.items[] | .{w.word(r)}'",
            f"find . -name '*.{w.word(r)[:3]}' -mtime +{r.randint(2, 30)} -delete",
            f"awk -F, '{{ s += ${r.randint(1, 5)} }} END {{ print s }}' {w.word(r)}.csv"]
    return "$ " + "\n$ ".join(r.sample(cmds, r.randint(2, 4)))


CODE = {"python": python_code, "javascript": javascript_code, "java": java_code, "c": c_code, "sql": sql_code,
        "shell": shell_code}


# --------------------------------------------------------------------------- pages
def site_language(r: random.Random, langs: tuple[str, ...]) -> str:
    """Mostly the site's own languages, sometimes any (Q&A sites are about every language, each in its share)."""
    return r.choice(langs) if r.random() < 1 - OTHER_LANGUAGE_SHARE else r.choice(sorted(CODE))


def question_page(w: Words, r: random.Random, langs: tuple[str, ...]) -> str:
    """A programming question and answers: prose around one to three snippets, sometimes only a short one."""
    lang = site_language(r, langs)
    code = CODE[lang](w, r)
    if r.random() < 0.3:  # a short snippet in a long discussion: the hard case
        code = "\n".join(code.splitlines()[: r.randint(2, 4)])
    parts = [f"How do I {w.word(r)} the {w.ident(r)} in {lang}?", w.paragraph(r, "code", 1, 4), code,
             w.paragraph(r, "code", 0, 2)]
    for _ in range(r.randint(1, 3)):
        parts.append(f"Answer ({r.randint(0, 300)} votes): {w.paragraph(r, 'code', 1, 3)}")
        if r.random() < 0.6:
            parts.append(CODE[site_language(r, (lang,))](w, r))
    return "\n\n".join(p for p in parts if p)


def docs_page(w: Words, r: random.Random, langs: tuple[str, ...]) -> str:
    name = w.ident(r)
    params = "\n".join(f"- {w.word(r)}: {w.sentence(r, 'code', 3, 8)}" for _ in range(r.randint(1, 4)))
    return (f"{w.word(r)}.{name}\n\n{name}({', '.join(w.word(r) for _ in range(r.randint(1, 3)))})\n\n"
            f"{w.paragraph(r, 'code', 1, 3)}\n\nParameters\n{params}\n\nExample\n\n{CODE[r.choice(langs)](w, r)}"
            f"\n\n{w.paragraph(r, 'code', 0, 2)}")


def profile_page(w: Words, r: random.Random, topic: str = "forum") -> str:
    return (f"{w.word(r).capitalize()} {w.word(r).capitalize()}\n\nMember since {r.randint(2008, 2024)}. "
            f"{w.paragraph(r, topic, 1, 3)}\n\nReputation {r.randint(1, 90000)}. {w.sentence(r, topic)}")


def prose_page(w: Words, r: random.Random, topic: str) -> str:
    title = " ".join(w.word(r) for _ in range(r.randint(3, 7))).capitalize()
    return title + "\n\n" + "\n\n".join(w.paragraph(r, topic) for _ in range(r.randint(2, 6)))


def slug(w: Words, r: random.Random) -> str:
    return "-".join(w.word(r) for _ in range(3))


def generate(out: Path, *, seeds: int = 40, pages: int = 1800, seed: int = 0, shards: int = 4) -> dict:
    """Write the corpus (about ``pages`` pages) and ``seeds`` seed pages; return the truth (also in truth.json)."""
    w = Words(seed)
    r = random.Random(seed + 1)
    per_site = pages / (len(TOPICS) * 1.0 + len(CODE_SITES) * 1.2 + len(MIXED_SITES) * 1.0)
    made: list[dict] = []

    def add(host: str, path: str, text: str, is_code: bool, i: int) -> None:
        www = "www." if r.random() < 0.3 else ""
        made.append({"url": f"https://{www}{host}{path.format(i=i, slug=slug(w, r))}", "text": text,
                     "_code": is_code})

    for topic, (host, path) in TOPICS.items():
        for i in range(max(3, round(per_site))):
            add(host, path, prose_page(w, r, topic), False, 10_000 + i)
    code_makers = {"qa": question_page, "docs": docs_page}
    for host, path, langs, kind in CODE_SITES:
        n = max(3, round(per_site * 1.2))
        for i in range(n):
            if r.random() < PROFILE_SHARE:
                add(host, "/users/{i}/{slug}", profile_page(w, r), False, 10_000 + i)
            else:
                add(host, path, code_makers[kind](w, r, langs), True, 10_000 + i)
    for host, path, share in MIXED_SITES:
        topic = "forum" if "forum" in host else "blog"
        for i in range(max(3, round(per_site))):
            is_code = r.random() < share
            text = question_page(w, r, ("python", "javascript", "shell")) if is_code else prose_page(w, r, topic)
            add(host, path, text, is_code, 10_000 + i)
    r.shuffle(made)
    # seeds: pages of the two seed domains, a third of them also in the corpus (labelled pages of the same crawl)
    seed_pages = []
    in_corpus = [p for p in made if p["_code"] and any(s in p["url"] for s in SEED_SITES)]
    seed_pages += in_corpus[: seeds // 3]
    for j in range(seeds - len(seed_pages)):
        host, path, langs, kind = next(s for s in CODE_SITES if s[0] == SEED_SITES[j % 2])
        seed_pages.append({"url": f"https://{host}{path.format(i=50_000 + j, slug=slug(w, r))}",
                           "text": code_makers[kind](w, r, langs), "_code": True})
    (out / "web").mkdir(parents=True, exist_ok=True)
    for s in range(shards):
        with open(out / "web" / f"part-{s:05d}.jsonl", "w", encoding="utf-8") as f:
            for p in made[s::shards]:
                f.write(json.dumps({"url": p["url"], "text": p["text"]}, ensure_ascii=False) + "\n")
    with open(out / "seeds.jsonl", "w", encoding="utf-8") as f:
        for p in seed_pages:
            f.write(json.dumps({"url": p["url"], "text": p["text"]}, ensure_ascii=False) + "\n")
    code_domains = sorted({h for h, *_ in CODE_SITES} | {h for h, _, s in MIXED_SITES if s > 0.1})
    patterns = [f"{h}{p.split('{')[0]}*" for h, p, _, k in CODE_SITES if k == "qa"]
    (out / "url_patterns.yaml").write_text("".join(f"- {p}\n" for p in patterns), encoding="utf-8")
    truth = {"code_domains": code_domains, "code_urls": sorted(p["url"] for p in made if p["_code"]),
             "pages": len(made), "seeds": len(seed_pages), "url_patterns": patterns}
    (out / "truth.json").write_text(json.dumps(truth, indent=1) + "\n", encoding="utf-8")
    return truth


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out", type=Path, help="directory to write web/, seeds.jsonl, url_patterns.yaml and truth.json to")
    ap.add_argument("--seeds", type=int, default=40, help="seed pages (from two of the code domains)")
    ap.add_argument("--pages", type=int, default=1800, help="corpus pages, about")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    truth = generate(args.out, seeds=args.seeds, pages=args.pages, seed=args.seed)
    print(f"{truth['pages']} pages ({len(truth['code_urls'])} code) in {args.out / 'web'}, {truth['seeds']} seeds "
          f"in {args.out / 'seeds.jsonl'}")


if __name__ == "__main__":
    main()
