from dataclasses import dataclass

import pytest

from oc_common.errors import OutputExistsError
from oc_common.outcome import reject
from oc_common.outputs import read_stats, shard_marker
from oc_common.records import read_file_records, write_records
from oc_synth.pipeline.runner import run_sharded
from oc_synth.pipeline.stages import RecordStage


@dataclass
class DropShortStage(RecordStage):
    """Test stage: rejects records whose text is shorter than min_len; counts calls so resume can be checked."""

    name: str = "drop_short"
    min_len: int = 3
    calls: int = 0

    def process_record(self, record, stats):
        self.calls += 1
        if len(record.get("text", "")) < self.min_len:
            reject(record, "too_short")
            stats.add("short")
        return record


def _make_input(tmp_path, n_shards=3):
    inp = tmp_path / "in"
    for s in range(n_shards):
        write_records(inp / f"part-{s}.jsonl", [{"id": f"{s}-{i}", "text": "x" * i, "language": "Python"}
                                                for i in range(5)])
    return inp


def test_run_sharded_splits_kept_and_dropped_and_counts(tmp_path):
    inp = _make_input(tmp_path)
    out, dropped = tmp_path / "out", tmp_path / "dropped"
    stats = run_sharded(command="test", inp=inp, out=out, stages=[DropShortStage()], options={},
                        dropped=dropped, quiet=True)
    assert stats.counters["records_in"] == 15
    assert stats.counters["records_out"] == 6  # lengths 3 and 4 survive, 2 per shard
    assert stats.groups["drop_reasons"]["too_short"] == 9
    kept, _ = read_file_records(out / "part-0.jsonl")
    assert [r["id"] for r in kept] == ["0-3", "0-4"]
    assert "keep" not in kept[0]  # only annotated with --signals / annotate
    gone, _ = read_file_records(dropped / "part-0.jsonl")
    assert all(r["keep"] is False and r["drop_reasons"] == ["too_short"] for r in gone)
    assert read_stats(out)["counters"]["records_out"] == 6


def test_rerun_resumes_only_unfinished_shards(tmp_path):
    inp = _make_input(tmp_path)
    out = tmp_path / "out"
    run_sharded(command="test", inp=inp, out=out, stages=[DropShortStage()], options={}, quiet=True)
    before = (out / "part-1.jsonl").read_bytes()
    # simulate a run killed after shard 0: shard 1's done-marker is gone, a temp file is left behind
    shard_marker(out, "part-1").unlink()
    (out / ".part-1.jsonl.abc.tmp").write_text("partial")
    stage = DropShortStage()
    stats = run_sharded(command="test", inp=inp, out=out, stages=[stage], options={}, quiet=True)
    assert stage.calls == 5  # only shard 1 redone
    assert (out / "part-1.jsonl").read_bytes() == before
    assert not (out / ".part-1.jsonl.abc.tmp").exists()
    assert stats.counters["records_out"] == 6


def test_existing_foreign_output_or_other_options_refused(tmp_path):
    inp = _make_input(tmp_path, 1)
    out = tmp_path / "out"
    out.mkdir()
    (out / "precious.txt").write_text("keep me")
    with pytest.raises(OutputExistsError, match="no run of ours wrote"):
        run_sharded(command="test", inp=inp, out=out, stages=[DropShortStage()], options={}, quiet=True)
    out2 = tmp_path / "out2"
    run_sharded(command="test", inp=inp, out=out2, stages=[DropShortStage()], options={"a": 1}, quiet=True)
    with pytest.raises(OutputExistsError, match=r"other options \(a: 1 there, 2 now\)"):
        run_sharded(command="test", inp=inp, out=out2, stages=[DropShortStage()], options={"a": 2}, quiet=True)
    run_sharded(command="test", inp=inp, out=out2, stages=[DropShortStage()], options={"a": 2}, quiet=True,
                overwrite=True)


def test_malformed_lines_are_counted_not_fatal(tmp_path):
    inp = tmp_path / "in"
    inp.mkdir()
    (inp / "a.jsonl").write_bytes(b'{"id": "1", "text": "hello"}\n{not json\n\xff\xfe\n[1, 2]\n\n'
                                  b'{"id": "2", "text": "ok!"}\n')
    (inp / "empty.jsonl").write_bytes(b"")
    out = tmp_path / "out"
    stats = run_sharded(command="test", inp=inp, out=out, stages=[DropShortStage()], options={}, quiet=True)
    assert stats.counters["records_in"] == 2
    assert stats.counters["bad_records"] == 3
    assert set(stats.groups["bad_records"]) == {"malformed JSON", "not UTF-8", "expected a JSON object, got list"}
    assert (out / "empty.jsonl").exists()


def test_unknown_executor_is_refused_before_any_output(tmp_path):
    from oc_common.errors import OcError

    inp = _make_input(tmp_path, 1)
    with pytest.raises(OcError, match="--executor 'foo': choose one of local, ray, xenna"):
        run_sharded(command="test", inp=inp, out=tmp_path / "out", stages=[DropShortStage()], options={},
                    executor="foo", quiet=True)
    assert not (tmp_path / "out").exists()
