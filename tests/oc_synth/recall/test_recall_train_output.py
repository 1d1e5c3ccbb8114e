"""`recall train` follows the output contract (oc_common/outputs.py, docs/outputs.md): a directory we did not write
is refused, `--overwrite` removes only what a training of ours wrote there, and an --out inside an input is refused
before any work."""

import pytest
from typer.testing import CliRunner

from oc_common.errors import OutputError
from oc_common.outputs import read_manifest
from oc_synth.cli import app


@pytest.fixture
def train(small_corpus):
    data, _ = small_corpus

    def run(out, *extra, corpus=None):
        args = ["recall", "train", "--seeds", str(data / "seeds.jsonl"), "--corpus", str(corpus or data / "web"),
                "-o", str(out), "-q", "-s", "fasttext.dim=16", "-s", "train.evaluation=holdout", *map(str, extra)]
        return CliRunner().invoke(app, args)

    return run


def one_line_error(result, *needles):
    """Refused with an output error of ours (the CLI prints it as one line, exit code 2: oc_common/cli.py)."""
    assert isinstance(result.exception, OutputError), result.output
    assert all(n in str(result.exception) for n in needles), str(result.exception)


def test_overwrite_replaces_only_what_training_wrote(train, tmp_path):
    out = tmp_path / "clf"
    first = train(out)
    assert first.exit_code == 0, first.output
    assert {"classifier.json", "tokenizer.json", "model.bin"} <= set(read_manifest(out)["writes"])
    (out / "NOTES.md").write_text("my notes on this classifier\n")
    one_line_error(train(out), "holds a classifier trained earlier", "--overwrite")
    again = train(out, "--overwrite")
    assert again.exit_code == 0, again.output
    assert (out / "NOTES.md").read_text() == "my notes on this classifier\n"  # not ours: left in place
    assert (out / "classifier.json").is_file() and (out / "model.bin").is_file()


def test_a_directory_we_did_not_write_is_refused_even_with_overwrite(train, tmp_path):
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    (theirs / "evaluation.json").write_text('{"their": "figures"}\n')  # a file name we also write
    (theirs / "paper.tex").write_text("\\section{Results}\n")
    for extra in ((), ("--overwrite",)):
        one_line_error(train(theirs, *extra), "holds files no run of ours wrote")
    assert sorted(p.name for p in theirs.iterdir()) == ["evaluation.json", "paper.tex"]
    assert (theirs / "evaluation.json").read_text() == '{"their": "figures"}\n'


def test_an_out_inside_the_corpus_is_refused_before_any_work(train, small_corpus, tmp_path):
    data, _ = small_corpus
    corpus = tmp_path / "web"
    corpus.mkdir()
    for f in (data / "web").iterdir():
        (corpus / f.name).write_bytes(f.read_bytes())
    before = sorted(p.name for p in corpus.iterdir())
    one_line_error(train(corpus / "clf", "--overwrite", corpus=corpus), "lies inside the input --corpus")
    assert sorted(p.name for p in corpus.iterdir()) == before
