"""``oc-synth recall ...``: code-related web recall (OpenCoder §2): fastText on BPE tokens, domains, URL patterns."""

from __future__ import annotations

from pathlib import Path

import typer

from oc_synth.cli import options as opt

app = typer.Typer(help="Code-related web recall: a fastText classifier trained from seed pages, three rounds of "
                       "scoring, domain discovery and URL-pattern seeds (OpenCoder §2).", no_args_is_help=True)

Seeds = typer.Option(..., "--seeds", help="Positive seed pages: JSONL/Parquet file or directory; each record needs "
                                          "`text` (`url` optional).")
Corpus = typer.Option(..., "--corpus", help="Web corpus: JSONL/Parquet file or directory of pages with `url` and "
                                            "`text` (e.g. text extracted from WARC files).")
Tokenizer = typer.Option(None, "--tokenizer", help="A `tokenizers` JSON file (e.g. an LLM's tokenizer.json) to "
                                                   "pre-tokenize with; default: train a byte-level BPE on the "
                                                   "training pages.")
Negatives = typer.Option(None, "--negatives", help="Pages known not to be code-related (JSONL/Parquet file or "
                                                  "directory with `text`; e.g. other.jsonl of `recall label`): "
                                                  "negatives first, the rest sampled from the corpus.")
RecallConfigPath = typer.Option(None, "--config", "-c", exists=True, dir_okay=False,
                                help="YAML with recall settings (tokenizer, fasttext, train, score_threshold, ...); "
                                     "see docs/recall.md.")
RecallOverrides = typer.Option(None, "--set", "-s", help="Override a setting, e.g. -s fasttext.dim=64 "
                                                        "(repeatable).")
ScoreThreshold = typer.Option(None, "--score-threshold", min=0.0, max=1.0,
                              help="A page is positive when its score is >= this (default 0.5).")
DomainThreshold = typer.Option(None, "--domain-threshold", min=0.0, max=1.0,
                               help="A domain is code-related when more than this fraction of its pages is positive "
                                    "(OpenCoder: 0.1).")


def _config(config: Path | None, overrides: list[str] | None, **cli: object):
    from oc_synth.recall.config import load_recall_config

    extra = [f"{k}={v}" for k, v in cli.items() if v is not None]
    return load_recall_config(config, [*(overrides or []), *extra])


@app.command()
def train(
    seeds: Path = Seeds,
    corpus: Path = Corpus,
    out: Path = opt.out_option("Classifier directory to write (model.bin, tokenizer.json, classifier.json)."),
    tokenizer: Path | None = Tokenizer,
    exclude_domains: Path | None = typer.Option(None, "--exclude-domains", exists=True, dir_okay=False,
                                                   help="domains.json of an earlier round: do not sample negatives "
                                                        "from what it found to be code (train.negatives_exclude: "
                                                        "pages matching --url-patterns in its code-related domains, "
                                                        "or whole domains)."),
    url_patterns: Path | None = typer.Option(None, "--url-patterns", exists=True, dir_okay=False,
                                                help="YAML list of URL patterns, for --exclude-domains."),
    negatives: Path | None = Negatives,
    config: Path | None = RecallConfigPath,
    overrides: list[str] | None = RecallOverrides,
    overwrite: bool = opt.Overwrite,
    quiet: bool = opt.Quiet,
) -> None:
    """Train the fastText page classifier: seeds are positives, negatives are sampled from the corpus; text is
    BPE-tokenized; fastText settings left to auto are chosen from the training-set size. Held-out scores (k-fold on
    small sets) give ROC AUC, precision/recall at the threshold and the threshold for a target precision; a
    classifier that fails the quality gate is refused with what to do (docs/recall.md)."""
    from oc_common.log import console
    from oc_common.stats import render_stats
    from oc_synth.recall.domains import code_domains, read_domains
    from oc_synth.recall.evaluation import summary_line
    from oc_synth.recall.tokenize import BpePretokenizer
    from oc_synth.recall.training import claim_classifier_output, train_classifier
    from oc_synth.recall.urls import NegativeExclusion, load_url_patterns

    cfg = _config(config, overrides)
    claim_classifier_output(out, {"config": cfg.model_dump(mode="json")}, overwrite=overwrite,
                            inputs={"--seeds": seeds, "--corpus": corpus, "--tokenizer": tokenizer,
                                    "--negatives": negatives, "--exclude-domains": exclude_domains,
                                    "--url-patterns": url_patterns})
    tok = BpePretokenizer.load(tokenizer, cfg.tokenizer.max_chars) if tokenizer else None
    exclude = NegativeExclusion(
        frozenset(code_domains(read_domains(exclude_domains))) if exclude_domains else frozenset(),
        tuple(load_url_patterns(url_patterns)) if url_patterns else (), cfg.train.negatives_exclude)
    meta, stats = train_classifier([seeds], corpus, out, cfg, tokenizer=tok, exclude=exclude,
                                   negatives=[negatives] if negatives else [])
    if not quiet:
        render_stats("recall train", stats, console)
    ft = meta["fasttext"]
    console.print(f"[bold]recall train[/]: {out} ({meta['train_positives']:,} + {meta['train_negatives']:,} pages; "
                  f"dim {ft['dim']}, lr {ft['lr']:g}, {ft['epoch']} epochs, word n-grams {ft['word_ngrams']}, bucket "
                  f"{ft['bucket']:,}; {meta['model_bytes'] / 2**20:.1f} MiB); {summary_line(meta['evaluation'])}",
                  highlight=False)


@app.command()
def score(
    inp: Path = opt.in_arg("Pages (or code files) to classify: JSONL/Parquet file or directory."),
    out: Path = opt.out_arg("Output directory: every usable record with its score (one shard per input shard; "
                            "reruns resume)."),
    model: Path = typer.Option(..., "--model", "-m", help="A classifier directory written by `recall train`, or any "
                                                          "fastText .bin model (bring your own quality or language "
                                                          "classifier)."),
    tokenizer: Path | None = typer.Option(None, "--tokenizer", help="Pre-tokenize with this `tokenizers` JSON "
                                                                       "(default: the classifier directory's; none "
                                                                       "for a bare .bin: raw text as NeMo Curator "
                                                                       "does)."),
    label: str | None = typer.Option(None, "--label", help="The label whose probability is the score (default: "
                                                              "the classifier's positive label, __label__code)."),
    score_field: str = typer.Option("code_score", "--score-field", help="Field to write the score to."),
    text_field: str = typer.Option("text", "--text-field", help="Field holding the text."),
    no_url: bool = typer.Option(False, "--no-url", help="Records are not web pages (e.g. code files): do not "
                                                        "require `url` or add `domain`."),
    threshold: float = typer.Option(0.5, "--score-threshold", min=0.0, max=1.0,
                                    help="Positive/negative split for the summary."),
    min_score: float | None = typer.Option(None, "--min-score", min=0.0, max=1.0,
                                              help="Drop records scored below this (written to --dropped with the "
                                                   "reason below_min_score)."),
    dropped: Path | None = opt.Dropped,
    executor: opt.ExecutorName = opt.Executor,
    output_format: opt.OutputFormatName = opt.OutputFormat,
    overwrite: bool = opt.Overwrite,
    quiet: bool = opt.Quiet,
) -> None:
    """Score a corpus with a fastText classifier in a NeMo Curator pipeline; each record gets the label's
    probability. Records without text (or url) are dropped with a counted reason."""
    from oc_synth.recall.classifier import ClassifierFiles
    from oc_synth.recall.scoring import run_score

    files = ClassifierFiles.resolve(model, tokenizer, label)
    run_score(inp, out, files, text_field=text_field, url_field=None if no_url else "url", score_field=score_field,
              threshold=threshold, min_score=min_score, dropped=dropped, executor=executor, overwrite=overwrite,
              quiet=quiet, output_format=output_format)


@app.command()
def domains(
    scored: Path = typer.Argument(..., help="Scored pages (the output of `recall score`)."),
    out: Path = opt.out_option("domains.json to write: domain -> {pages, positives, positive_fraction, "
                               "code_related}.", file_okay=True, dir_okay=False),
    score_threshold: float | None = ScoreThreshold,
    domain_threshold: float | None = DomainThreshold,
    min_pages: int | None = typer.Option(None, "--min-pages", min=1, help="Domains with fewer pages are never "
                                                                             "code-related (default 1)."),
    score_field: str = typer.Option("code_score", "--score-field", help="Field holding the score."),
    top: int = typer.Option(20, "--top", min=1, help="Domains to show in the table."),
    config: Path | None = RecallConfigPath,
    overrides: list[str] | None = RecallOverrides,
) -> None:
    """Group pages by domain; mark a domain code-related when more than --domain-threshold of its pages are
    positive; print the top domains."""
    from oc_common.log import console
    from oc_common.stats import Stats
    from oc_synth.recall.domains import domain_table, render_domains, write_domains

    cfg = _config(config, overrides, score_threshold=score_threshold, domain_threshold=domain_threshold,
                  min_domain_pages=min_pages)
    stats = Stats()
    table = domain_table(scored, score_threshold=cfg.score_threshold, domain_threshold=cfg.domain_threshold,
                         min_pages=cfg.min_domain_pages, score_field=score_field, stats=stats)
    write_domains(out, table)
    render_domains(table, top=top)
    skipped = dict(stats.groups.get("skipped", {}))
    console.print(f"[bold]recall domains[/]: {stats.counters['pages']:,} pages in {len(table):,} domains, "
                  f"{stats.counters['code_domains']:,} code-related; written to {out}"
                  + (f"; skipped {skipped}" if skipped else ""), highlight=False)


@app.command()
def urls(
    scored: Path = typer.Argument(..., help="Scored pages (the output of `recall score`)."),
    domains_file: Path = typer.Option(..., "--domains", exists=True, dir_okay=False,
                                      help="domains.json from `recall domains`: patterns apply only inside its "
                                           "code-related domains."),
    url_patterns: Path = typer.Option(..., "--url-patterns", exists=True, dir_okay=False,
                                      help="YAML list of URL patterns such as `stackoverflow.com/questions/*`."),
    out: Path = opt.out_option("JSONL of new seeds to write: pattern-matched pages the classifier scored "
                               "negative.", file_okay=True, dir_okay=False),
    score_threshold: float | None = ScoreThreshold,
    score_field: str = typer.Option("code_score", "--score-field", help="Field holding the score."),
    quiet: bool = opt.Quiet,
) -> None:
    """Apply URL patterns inside code-related domains: matching pages that were scored negative become new seeds."""
    from oc_common.log import console
    from oc_common.stats import render_stats
    from oc_synth.recall.domains import code_domains, read_domains
    from oc_synth.recall.urls import collect_pattern_seeds, load_url_patterns

    patterns = load_url_patterns(url_patterns)
    cfg = _config(None, None, score_threshold=score_threshold)
    stats = collect_pattern_seeds(scored, code_domains(read_domains(domains_file)), patterns, out,
                                  score_threshold=cfg.score_threshold, score_field=score_field)
    if not quiet:
        render_stats("recall urls", stats, console)
    console.print(f"[bold]recall urls[/]: {stats.counters['pattern_matches']:,} pattern matches in code domains, "
                  f"{stats.counters['new_seeds']:,} new seeds written to {out}", highlight=False)


@app.command()
def run(
    seeds: Path = Seeds,
    corpus: Path = Corpus,
    out: Path = opt.out_option("Output directory: round_<k>/ per round, recalled/, report.json (reruns resume)."),
    rounds: int | None = typer.Option(None, "--rounds", min=1, help="Rounds of train/score/domains/URLs "
                                                                       "(OpenCoder: 3)."),
    domain_threshold: float | None = DomainThreshold,
    score_threshold: float | None = ScoreThreshold,
    url_patterns: Path | None = typer.Option(None, "--url-patterns", exists=True, dir_okay=False,
                                                help="YAML list of URL patterns (e.g. stackoverflow.com/questions/*) "
                                                     "applied inside code-related domains."),
    tokenizer: Path | None = Tokenizer,
    negatives: Path | None = Negatives,
    config: Path | None = RecallConfigPath,
    overrides: list[str] | None = RecallOverrides,
    dropped: Path | None = typer.Option(None, "--dropped", file_okay=False,
                                           help="Write corpus records that cannot be scored (no url or text, not "
                                                "UTF-8) here, each with drop_reasons."),
    executor: opt.ExecutorName = opt.Executor,
    output_format: opt.OutputFormatName = typer.Option("jsonl", "--output-format",
                                                       help="jsonl, jsonl.gz or parquet, for the shards of "
                                                            "DIR/recalled/ (`datasets.load_dataset(\"json\" or "
                                                            "\"parquet\", data_dir=DIR/recalled)` reads them)."),
    overwrite: bool = opt.Overwrite,
    quiet: bool = opt.Quiet,
) -> None:
    """The whole loop: train, check the classifier on held-out pages (the quality gate: a classifier that cannot tell
    the seeds from the corpus stops the run before scoring), score the corpus, find code domains, turn URL-pattern
    pages the classifier missed into new seeds, retrain; finally write DIR/recalled/ (pages scored positive by the
    last round, with code_score). Prints a report per round (docs/recall.md: how to read it)."""
    from oc_synth.recall.loop import run_recall

    cfg = _config(config, overrides, rounds=rounds, domain_threshold=domain_threshold,
                  score_threshold=score_threshold)
    run_recall(seeds, corpus, out, cfg, url_patterns=url_patterns, tokenizer=tokenizer, negatives=negatives,
               dropped=dropped, executor=executor, overwrite=overwrite, quiet=quiet, output_format=output_format)


@app.command()
def label(
    inp: Path = opt.in_arg("Candidate pages: JSONL/Parquet file or directory; each record needs `text` (`url` is "
                           "shown to the model when present)."),
    out: Path = opt.out_arg("Output directory: labels.jsonl (every answer), code.jsonl (seeds for `recall run "
                            "--seeds`), other.jsonl (for --negatives); reruns resume."),
    backend: opt.BackendName = opt.Backend,
    model: str = typer.Option(..., "--model", "-m", help="Model directory or hub name (hf, vllm), or the served "
                                                         "model name (openai)."),
    backend_opts: list[str] | None = opt.BackendOptions,
    recipe: Path | None = typer.Option(None, "--recipe", exists=True, dir_okay=False,
                                          help="Label recipe YAML (prompt, answers, sampling); default: the shipped "
                                               "oc_synth/recall/label.yaml."),
    recipe_set: list[str] | None = typer.Option(None, "--set", "-s", help="Override a recipe key, e.g. -s "
                                                                            "max_chars=2000 (repeatable)."),
    sample: int | None = typer.Option(None, "--sample", min=1, help="Label a uniform sample of this many pages "
                                                                       "(the same pages on every run) instead of all."),
    seed: int = typer.Option(0, "--seed", help="Seed of the --sample draw."),
    batch_size: int = typer.Option(32, "--batch-size", min=1, help="Pages per backend call and per append to "
                                                                   "labels.jsonl."),
    executor: opt.ModelExecutorName = typer.Option(
        "local", "--executor", "-e",
        help="local: the backend in this process. ray: --workers copies of it on Ray workers (a local Ray, or the "
             "cluster named by RAY_ADDRESS; GPU workers where the cluster has GPUs) share each batch."),
    workers: int = typer.Option(1, "--workers", "-w", min=1, help="--executor ray: copies of the backend, one Ray "
                                                                  "worker each."),
    overwrite: bool = opt.Overwrite,
    quiet: bool = opt.Quiet,
) -> None:
    """Label candidate pages as code-related or not with an LLM (how OpenCoder grew its seed set): the recipe's
    prompt per page, the first answer word decides. Pages whose backend call failed are retried by a rerun."""
    from oc_common.log import console
    from oc_common.stats import render_stats
    from oc_synth.recall.label import label_pages

    stats = label_pages(inp, out, backend, model, opt.parse_backend_options(backend_opts), recipe=recipe,
                        recipe_overrides=list(recipe_set or []), sample=sample, seed=seed, batch_size=batch_size,
                        overwrite=overwrite, quiet=quiet, executor=executor, workers=workers)
    if not quiet:
        render_stats("recall label", stats, console)
    c = stats.counters
    console.print(f"[bold]recall label[/]: {c['labelled_code']:,} pages labelled code ({out / 'code.jsonl'}), "
                  f"{c['labelled_other']:,} other, {c['labelled_unparsed']:,} answers without a label word",
                  highlight=False)
    if c.get("backend_failed"):
        console.print(f"[yellow]{c['backend_failed']:,} pages failed in the backend[/]; rerun the same command to "
                      "retry them.")
    if c.get("labelled_prompt_too_long"):
        console.print(f"[yellow]{c['labelled_prompt_too_long']:,} pages do not fit the model's context[/] (labelled "
                      "prompt_too_long); a recipe with a lower max_chars labels them (with --overwrite).")
