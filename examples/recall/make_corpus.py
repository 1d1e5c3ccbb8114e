"""Write a small synthetic web corpus for the recall demo and tests: code pages on a few domains among non-code ones.

    python examples/recall/make_corpus.py OUT_DIR [--scale 1.0] [--seed 0]

writes ``OUT_DIR/web/part-0000{0,1}.jsonl`` (pages with ``url`` and ``text``), ``OUT_DIR/seeds.jsonl`` (positive
seeds) and ``OUT_DIR/truth.json`` (which domains and pages are code, for checking the loop; never read by it).
Every page is generated from this file's own word lists, deterministically from ``--seed``.

The domains are shaped like the paper's story: the seeds are Python API-reference pages (``docs.pylib.example``);
``qa.devforum.example`` is a Q&A site whose ``/questions/`` pages are mostly prose around short JavaScript/shell
snippets, so a classifier trained on API docs finds only part of them (but enough to mark the domain); its missed
questions match a URL pattern and become seeds, after which ``blog.shellnotes.example`` (shell/JS tutorials, far from
the seeds) is recovered as well. Non-code domains include tech news and a cooking Q&A site with ``/questions/`` URLs.
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

# --------------------------------------------------------------------------- word lists (ours)
VERBS = "load parse merge split fetch encode decode render compute resolve flatten validate sort filter group".split()
NOUNS = "table header frame record token path buffer node edge matrix config session batch index column".split()
MODULES = "io net text cache graph stats config auth queue image".split()
ATTRS = "name size value items count status id length data children".split()
TYPES = "list dict str int bool Table Frame Node None".split()
JS_PKGS = "express axios lodash moment react yargs chalk dotenv".split()
ERRORS = ["TypeError: Cannot read properties of undefined (reading '{a}')", "ReferenceError: {v} is not defined",
          "SyntaxError: Unexpected token '}}'", "Error: ENOENT: no such file or directory", "npm ERR! code ERESOLVE",
          "bash: {v}: command not found", "Permission denied (publickey)", "UnhandledPromiseRejectionWarning"]
CITIES = "Lisbon Oslo Nairobi Lima Hanoi Porto Quito Tbilisi Dakar Perth Cork Riga".split()
NAMES = "alex sam kim lee jo ana max eva tom mia raj ola".split()
INGREDIENTS = "flour butter garlic onions tomatoes basil rice lentils honey lemon yogurt spinach".split()
PLACES = "the old town|the harbour|the mountain pass|the river valley|the night market|the cathedral".split("|")
TEAMS = "Rovers United Falcons Tigers Harriers Wanderers".split()
GADGETS = "phone tablet laptop smartwatch headset camera".split()


def ident(r: random.Random) -> str:
    return f"{r.choice(VERBS)}_{r.choice(NOUNS)}"


def camel(r: random.Random) -> str:
    return f"{r.choice(VERBS)}{r.choice(NOUNS).capitalize()}"


def sentences(r: random.Random, templates: list[str], n: int, **extra) -> str:
    out = []
    for _ in range(n):
        out.append(r.choice(templates).format(
            v=r.choice(VERBS), n=r.choice(NOUNS), n2=r.choice(NOUNS), a=r.choice(ATTRS), k=r.randint(2, 500),
            city=r.choice(CITIES), ing=r.choice(INGREDIENTS), ing2=r.choice(INGREDIENTS), place=r.choice(PLACES),
            team=r.choice(TEAMS), team2=r.choice(TEAMS), g=r.choice(GADGETS), name=r.choice(NAMES).capitalize(),
            **extra))
    return " ".join(out)


# --------------------------------------------------------------------------- code pages
DOC_PROSE = ["Returns the {n} of each {n2} in the input.", "Raises ValueError if the {n} is empty.",
             "The result is cached for {k} calls.", "This function is thread-safe.",
             "Pass strict=True to reject a {n} without a {a}.", "See also the {n2} module.",
             "New in version 2.{k}."]


def python_snippet(r: random.Random, mod: str, func: str) -> str:
    arg, var, attr = r.choice(NOUNS), r.choice(NOUNS) + "s", r.choice(ATTRS)
    lines = [f"import pylib.{mod}", "", f"def {ident(r)}({arg}, limit={r.randint(1, 99)}):",
             f"    {var} = pylib.{mod}.{func}({arg})", "    result = []", f"    for item in {var}:",
             f"        if item.{attr} > limit:", "            result.append(item)",
             f"    return sorted(result, key=lambda x: x.{r.choice(ATTRS)})"]
    if r.random() < 0.5:
        lines += ["", "", f"class {camel(r).capitalize()}:", "    def __init__(self, path):",
                  "        self.path = path", f"        self.{r.choice(ATTRS)} = None"]
    return "\n".join(lines)


def api_doc_page(r: random.Random) -> str:
    """An API-reference page of a Python library, or (one in three) of its JavaScript client."""
    mod, func = r.choice(MODULES), ident(r)
    args = ", ".join(r.sample(NOUNS, r.randint(1, 3)))
    params = "\n".join(f"- {a}: the {r.choice(NOUNS)} to {r.choice(VERBS)}" for a in args.split(", "))
    example = python_snippet(r, mod, func) if r.random() < 2 / 3 else js_snippet(r)
    return (f"pylib.{mod}.{func}\n\n{func}({args}) -> {r.choice(TYPES)}\n\n{sentences(r, DOC_PROSE, 3)}\n\n"
            f"Parameters\n{params}\n\nExample\n\n{example}\n\n{sentences(r, DOC_PROSE, 2)}")


def paste_page(r: random.Random) -> str:
    """A paste-bin page: a title and a few snippets, almost no prose."""
    parts = [python_snippet(r, r.choice(MODULES), ident(r)) if r.random() < 0.6 else js_snippet(r)
             for _ in range(r.randint(1, 3))]
    return f"{ident(r)}.{r.choice(['py', 'js'])} - {r.randint(2, 90)} lines\n\n" + "\n\n".join(parts)


TUTORIAL_PROSE = ["In this lesson we write a small function and test it step by step.",
                  "First we read the input, then we keep only the items we need.",
                  "Run the script and look at the output before you go on.", "Try changing the limit and run it again.",
                  "If you get an error, read the last line of the message first.",
                  "In the next lesson we will write the same thing as a class."]


def tutorial_page(r: random.Random) -> str:
    """A beginner's lesson: prose around Python snippets."""
    parts = [sentences(r, TUTORIAL_PROSE, r.randint(2, 4))]
    for _ in range(r.randint(1, 2)):
        parts += [python_snippet(r, r.choice(MODULES), ident(r)), sentences(r, TUTORIAL_PROSE, r.randint(1, 3))]
    return f"Lesson {r.randint(1, 40)}: {r.choice(VERBS)} a {r.choice(NOUNS)}\n\n" + "\n\n".join(parts)


QA_PROSE = ["I have been trying to {v} the {n} for hours and I am stuck.", "The docs say this should just work.",
            "I am on Node {k} and Ubuntu 22.04.", "Any help is appreciated, thanks in advance!",
            "It worked yesterday after I installed the update, but not anymore.",
            "I searched the forum and found a similar thread, but the accepted answer did not help me.",
            "My colleague says it is a version problem, is that right?",
            "I also tried restarting the terminal and reinstalling everything.",
            "When I run it locally it is fine, only the server fails.", "Edit: still failing after the upgrade."]
ANSWER_PROSE = ["You are calling it before the promise resolves, so the value is still undefined.",
                "The error means the path is relative to the working directory, not to the script.",
                "This is a known issue with older versions; upgrading fixed it for me.",
                "Quote the variable, otherwise the shell splits it on spaces.",
                "You need to export the variable so that child processes can see it.",
                "Await the call inside an async function and handle the rejection.",
                "Run the script again and read the last line of the message first.",
                "Keep only the items you need before you sort them, as in the snippet above.",
                "Try changing the limit and run it again, then look at the output."]


def js_snippet(r: random.Random) -> str:
    v, f = r.choice(NOUNS), camel(r)
    return "\n".join([f"const {v} = require('{r.choice(JS_PKGS)}');", f"async function {f}(id) {{",
                      f"  const res = await {v}.get(`/api/{r.choice(NOUNS)}/${{id}}`);",
                      f"  return res.data.{r.choice(ATTRS)};", "}", f"{f}({r.randint(1, 99)}).then(console.log);"])


def shell_snippet(r: random.Random) -> str:
    return "\n".join(r.sample([
        "for f in logs/*.log; do grep -c ERROR \"$f\"; done", "export PATH=\"$HOME/.local/bin:$PATH\"",
        f"tar -czf backup-$(date +%F).tgz /var/www/{r.choice(NOUNS)}", "sudo systemctl restart nginx",
        f"curl -s https://api.example.org/{r.choice(NOUNS)} | jq '.items[] | .{r.choice(ATTRS)}'",
        f"find . -name '*.tmp' -mtime +{r.randint(2, 30)} -delete", "chmod +x deploy.sh && ./deploy.sh --dry-run",
        f"awk -F, '{{ sum += ${r.randint(1, 5)} }} END {{ print sum }}' data.csv"], r.randint(2, 4)))


def question_page(r: random.Random) -> str:
    """A question with a Python, JavaScript or shell snippet and an answer (with fixed code, one time in two):
    mostly prose, some code."""
    x = r.random()
    make = (lambda: python_snippet(r, r.choice(MODULES), ident(r))) if x < 0.4 else \
        (lambda: js_snippet(r)) if x < 0.7 else (lambda: shell_snippet(r))
    err = r.choice(ERRORS).format(a=r.choice(ATTRS), v=r.choice(NOUNS))
    fixed = f"\n\n{make()}\n\n" if r.random() < 0.5 else " "
    return (f"How do I {r.choice(VERBS)} a {r.choice(NOUNS)} without getting this error?\n\n"
            f"{sentences(r, QA_PROSE, r.randint(1, 6))}\n\n{err}\n\n"
            f"{sentences(r, QA_PROSE, r.randint(0, 2))} Here is what I have:\n\n{make()}\n\n"
            f"Answer ({r.randint(1, 90)} votes): {sentences(r, ANSWER_PROSE, r.randint(1, 3))}{fixed}"
            f"{sentences(r, ANSWER_PROSE, r.randint(1, 2))}\n\n{sentences(r, QA_PROSE, r.randint(0, 2))}")


BLOG_PROSE = ["In this post I show how to {v} every {n} on a small server with a few lines of shell.",
              "Cron runs the script every night, and the log tells me what happened.",
              "Remember to quote your variables and to check the exit status.",
              "The same trick works in a Docker container or a CI job.",
              "If the command is not found, check your PATH first.", "Here is the whole script:"]


def blog_page(r: random.Random) -> str:
    parts = [sentences(r, BLOG_PROSE, 3)]
    for _ in range(r.randint(2, 3)):
        parts += [shell_snippet(r), sentences(r, BLOG_PROSE, 2)]
    return f"Shell notes: {r.choice(VERBS)} your {r.choice(NOUNS)}s\n\n" + "\n\n".join(parts)


# --------------------------------------------------------------------------- non-code pages
PROSE = {
    "recipe": ["Preheat the oven to {k} degrees.", "Mix the {ing} with the {ing2} and a pinch of salt.",
               "Let it rest for {k} minutes before serving.", "My grandmother always added more {ing}.",
               "Serve warm with fresh {ing2} on the side.", "This dish keeps well in the fridge for two days."],
    "travel": ["We arrived in {city} late in the evening.", "The walk to {place} takes about {k} minutes.",
               "Buses leave every hour from the main square.", "The best time to visit is early autumn.",
               "We had dinner near {place} and watched the sunset.", "Bring good shoes, the streets are steep."],
    "news": ["The city council of {city} approved the new budget on Monday.", "Officials expect the work to take {k} "
             "days.", "Residents said they were relieved.", "The vote was closer than expected.",
             "A spokesperson declined to comment on the details.", "Local schools will reopen next week."],
    "sports": ["The {team} beat the {team2} {k} to nil on Saturday.", "The coach praised the defence.",
               "Fans travelled from {city} to watch the final.", "The captain scored twice in the second half.",
               "Tickets for the next match sold out within hours."],
    "garden": ["Plant the {ing} seedlings after the last frost.", "Water deeply once a week rather than every day.",
               "Mulch keeps the soil moist through the summer.", "Prune the roses in late winter.",
               "Slugs love young {ing2} leaves, so check at night."],
    "technews": ["The new {g} ships with a faster chip and a bigger battery.", "Analysts expect sales of {k} million "
                 "units this year.", "The startup from {city} raised new funding to grow its app.",
                 "Reviewers liked the screen but not the price.", "The update brings better privacy settings.",
                 "Cloud revenue grew again, the company said in its quarterly report."],
    "cooking_qa": ["How long should I rest a roast before carving it?", "My {ing} always burns, what am I doing "
                   "wrong?", "Answer: lower the heat and stir more often.", "Try adding the {ing2} at the end.",
                   "Use a thermometer, it takes the guesswork out.", "I asked my neighbour, a chef in {city}."],
    "profile": ["{name} has been a member for {k} weeks.", "Lives in {city}.", "Interests: hiking, photography, "
                "board games.", "Reputation {k}.", "Last seen this week.", "Badges: {k} bronze, 2 silver."],
}


def prose_page(r: random.Random, kind: str) -> str:
    paras = [sentences(r, PROSE[kind], r.randint(3, 6)) for _ in range(r.randint(2, 4))]
    return "\n\n".join(paras)


# --------------------------------------------------------------------------- the corpus
# (domain, path template, page maker, is_code, pages at scale 1)
SECTIONS = [
    ("docs.pylib.example", "/api/{m}/{i}.html", api_doc_page, True, 40),
    ("paste.codebin.example", "/p/{i}", paste_page, True, 40),
    ("learn.pytutor.example", "/lesson/{i}", tutorial_page, True, 30),
    ("qa.devforum.example", "/questions/{i}/{slug}", question_page, True, 110),
    ("qa.devforum.example", "/users/{i}/{slug}", lambda r: prose_page(r, "profile"), False, 30),
    ("blog.shellnotes.example", "/posts/{i}-{slug}", blog_page, True, 50),
    ("blog.shellnotes.example", "/about/{i}", lambda r: prose_page(r, "profile"), False, 30),
    ("recipes.example", "/recipe/{i}-{slug}", lambda r: prose_page(r, "recipe"), False, 300),
    ("travel.example", "/stories/{i}/{slug}", lambda r: prose_page(r, "travel"), False, 300),
    ("citynews.example", "/article/{i}", lambda r: prose_page(r, "news"), False, 250),
    ("sports.example", "/match/{i}", lambda r: prose_page(r, "sports"), False, 200),
    ("garden.example", "/tips/{i}", lambda r: prose_page(r, "garden"), False, 200),
    ("technews.example", "/story/{i}/{slug}", lambda r: prose_page(r, "technews"), False, 250),
    ("ask.cooking.example", "/questions/{i}/{slug}", lambda r: prose_page(r, "cooking_qa"), False, 200),
    ("ask.cooking.example", "/users/{i}/{slug}", lambda r: prose_page(r, "profile"), False, 60),
    ("travel.example", "/authors/{i}", lambda r: prose_page(r, "profile"), False, 30),
]


def make_page(r: random.Random, domain: str, path: str, maker, is_code: bool, i: int) -> dict:
    slug = f"{r.choice(VERBS)}-{r.choice(NOUNS)}-{r.choice(NOUNS)}"
    url = f"https://{'www.' if r.random() < 0.3 else ''}{domain}{path.format(i=i, slug=slug, m=r.choice(MODULES))}"
    return {"url": url, "text": maker(r), "_code": is_code}


def generate(out: Path, scale: float = 1.0, seed: int = 0, shards: int = 2) -> dict:
    r = random.Random(seed)
    pages = []
    for domain, path, maker, is_code, n in SECTIONS:
        pages += [make_page(r, domain, path, maker, is_code, 1000 + i) for i in range(max(2, round(n * scale)))]
    r.shuffle(pages)
    # seeds: API-reference, paste and lesson pages, half of them also in the corpus (as when seeds are labelled web
    # pages)
    seeds = []
    for (domain, path, maker, *_), n in zip(SECTIONS[:3], (25, 25, 10), strict=True):
        in_corpus = [p for p in pages if domain in p["url"]]
        n = max(2, round(n * scale))
        seeds += in_corpus[: n // 2] + [make_page(r, domain, path, maker, True, 5000 + i) for i in range(n - n // 2)]
    (out / "web").mkdir(parents=True, exist_ok=True)
    for s in range(shards):
        with open(out / "web" / f"part-{s:05d}.jsonl", "w", encoding="utf-8") as f:
            for p in pages[s::shards]:
                f.write(json.dumps({"url": p["url"], "text": p["text"]}, ensure_ascii=False) + "\n")
    with open(out / "seeds.jsonl", "w", encoding="utf-8") as f:
        for p in seeds:
            f.write(json.dumps({"url": p["url"], "text": p["text"]}, ensure_ascii=False) + "\n")
    truth = {"code_domains": sorted({d for d, _, _, c, _ in SECTIONS if c}),
             "non_code_domains": sorted({d for d, *_ in SECTIONS} - {d for d, _, _, c, _ in SECTIONS if c}),
             "code_urls": sorted(p["url"] for p in pages if p["_code"]), "pages": len(pages), "seeds": len(seeds)}
    (out / "truth.json").write_text(json.dumps(truth, indent=1) + "\n", encoding="utf-8")
    return truth


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out", type=Path, help="directory to write web/, seeds.jsonl and truth.json to")
    ap.add_argument("--scale", type=float, default=1.0, help="multiply every domain's page count")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    truth = generate(args.out, args.scale, args.seed)
    print(f"{truth['pages']} pages ({len(truth['code_urls'])} code) in {args.out / 'web'}, {truth['seeds']} seeds "
          f"in {args.out / 'seeds.jsonl'}")


if __name__ == "__main__":
    main()
