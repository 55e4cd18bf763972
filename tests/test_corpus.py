"""Corpus mode: every input format, bad rows, resuming after kill -9, and Ray against local."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from expnet.cli.main import main
from expnet.corpus import CorpusJob, explain_corpus
from expnet.corpus.readers import READER_VERSION
from expnet.corpus.writers import PartStore
from expnet.errors import ExpnetError
from expnet.explainers import get_explainer
from expnet.explainers.attention import RawAttention
from expnet.models.classifier import Classifier

WORDS = ["the", "movie", "was", "good", "bad", "not", "very", "fun", "boring", "i", "love", "hate", "this"]
# The tiny classifier has 64 positions: 80 words are cut, so some words come out unscored.
LONG = " ".join(WORDS * 7)


def corpus(n: int = 12) -> list[tuple[str, str]]:
    rng = np.random.default_rng(0)
    rows = [(f"t{i}", " ".join(rng.choice(WORDS, size=int(rng.integers(2, 9))))) for i in range(n)]
    return [*rows, ("long", LONG)]


def write_input(folder, fmt: str, rows: list[tuple[str, str]]):
    path = folder / f"in.{fmt}"
    if fmt == "txt":
        path.write_text("".join(text + "\n" for _, text in rows))
    elif fmt == "jsonl":
        path.write_text("".join(json.dumps({"id": i, "text": t}) + "\n" for i, t in rows))
    elif fmt == "csv":
        with path.open("w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["id", "text"])
            writer.writerows(rows)
    else:
        pq.write_table(pa.table({"id": [i for i, _ in rows], "text": [t for _, t in rows]}), path, row_group_size=4)
    return path


def job(classifier: str, source, output, **settings) -> CorpusJob:
    settings = {"explainer": "raw_attention", "batch_size": 4, "part_size": 4, **settings}
    return CorpusJob(classifier, input=source, output=output, **settings)


def read_output(path) -> list[dict]:
    if str(path).endswith(".parquet"):
        return pq.read_table(path).to_pylist()
    return read_jsonl(path)


def read_jsonl(path) -> list[dict]:
    return [json.loads(line) for line in Path(path).read_text().splitlines()]


def assert_same_explanations(rows: list[dict], expected: list[dict], ids: bool = True) -> None:
    assert len(rows) == len(expected)
    for row, want in zip(rows, expected, strict=True):
        if ids:
            assert row["id"] == want["id"]
        assert row["words"] == want["words"] and row["prediction"] == want["prediction"]
        scores = [np.nan if s is None else s for s in row["scores"]]
        np.testing.assert_allclose(scores, [np.nan if s is None else s for s in want["scores"]], rtol=1e-6)


def test_every_input_format_gives_the_same_explanations(tiny_classifier_dir, tmp_path):
    rows = corpus()
    outputs = {}
    for fmt in ("txt", "jsonl", "csv", "parquet"):
        summary = explain_corpus(job(tiny_classifier_dir, write_input(tmp_path, fmt, rows), tmp_path / f"{fmt}.parquet"))
        assert summary.rows == len(rows) and summary.bad_rows == 0
        outputs[fmt] = read_output(tmp_path / f"{fmt}.parquet")
    assert [r["id"] for r in outputs["txt"]] == [str(n) for n in range(1, len(rows) + 1)]  # txt: the line number
    assert [r["id"] for r in outputs["csv"]] == [i for i, _ in rows]
    for fmt in ("jsonl", "csv", "parquet"):
        assert_same_explanations(outputs[fmt], outputs["jsonl"])
    assert_same_explanations(outputs["txt"], outputs["jsonl"], ids=False)
    long = outputs["jsonl"][-1]
    assert not all(long["scored"]) and np.isnan(long["scores"][-1])  # cut words: NaN, not scored
    # And every row is what the explainer gives for that text on its own (no batch mixed up).
    direct = get_explainer("raw_attention").explain(Classifier.load(tiny_classifier_dir), [text.split() for _, text in rows])
    for row, explanation in zip(outputs["jsonl"], direct, strict=True):
        assert row["words"] == explanation.words and row["prediction"] == explanation.prediction
        assert row["scored"] == explanation.scored.tolist()
        np.testing.assert_allclose(np.array(row["scores"], dtype=float), explanation.scores, rtol=1e-5, atol=1e-7)


def test_jsonl_output_has_nulls_and_a_settings_sidecar(tiny_classifier_dir, tmp_path):
    source = write_input(tmp_path, "jsonl", corpus())
    explain_corpus(job(tiny_classifier_dir, source, tmp_path / "out.parquet"))
    explain_corpus(job(tiny_classifier_dir, source, tmp_path / "out.jsonl"))
    rows = read_output(tmp_path / "out.jsonl")
    assert rows[-1]["scores"][-1] is None and rows[0]["explainer"] == "raw_attention"
    assert set(rows[0]) >= {"id", "words", "scores", "scored", "rationale", "prediction", "prediction_name", "probabilities"}
    assert_same_explanations(rows, read_output(tmp_path / "out.parquet"))
    meta = json.loads((tmp_path / "out.jsonl.meta.json").read_text())
    parquet_meta = json.loads(pq.read_schema(tmp_path / "out.parquet").metadata[b"expnet"])
    assert meta == parquet_meta and meta["explainer"] == "raw_attention" and meta["batch_size"] == 4
    assert not list(tmp_path.glob(".out*"))  # no parts folder, no temporaries


def test_bad_rows_go_to_the_errors_file_and_never_stop_the_job(tiny_classifier_dir, tmp_path):
    source = tmp_path / "in.jsonl"
    lines = [
        json.dumps({"id": "a", "text": "the movie was good"}),
        "{not json",
        json.dumps({"id": "b"}),
        json.dumps({"text": "no id here"}),
        json.dumps({"id": "c", "text": "   "}),
        json.dumps({"id": "a", "text": "a second a"}),
        json.dumps(["a", "list"]),
        json.dumps({"id": "d", "text": ["a", "list", "of", "words"]}),
        "",
        json.dumps({"id": "e", "text": "this is fun"}),
    ]
    source.write_text("\n".join(lines) + "\n")
    summary = explain_corpus(job(tiny_classifier_dir, source, tmp_path / "out.parquet"))
    assert [r["id"] for r in read_output(tmp_path / "out.parquet")] == ["a", "d", "e"]
    errors = read_jsonl(tmp_path / "out.parquet.errors.jsonl")
    assert [(e["line"], e["id"]) for e in errors] == [(2, None), (3, "b"), (4, None), (5, "c"), (6, "a"), (7, None)]
    reasons = [e["reason"] for e in errors]
    assert reasons[0].startswith("not JSON") and reasons[1] == "missing field 'text'" and reasons[2] == "missing field 'id'"
    assert reasons[3] == "empty text" and reasons[4].startswith("duplicate id 'a'")
    assert summary.bad_rows == 6 and summary.rows == 3


def test_csv_and_txt_bad_rows(tiny_classifier_dir, tmp_path):
    # A blank line (or one of spaces) holds no text: skipped, as explain's stdin skips it, not
    # logged as a bad row; the ids stay the line numbers.
    (tmp_path / "in.txt").write_text("the movie\n\nwas good\n   \nfine\n")
    summary = explain_corpus(job(tiny_classifier_dir, tmp_path / "in.txt", tmp_path / "txt.parquet"))
    assert [r["id"] for r in read_output(tmp_path / "txt.parquet")] == ["1", "3", "5"]
    assert summary.bad_rows == 0 and read_jsonl(tmp_path / "txt.parquet.errors.jsonl") == []
    (tmp_path / "in.csv").write_text('id,text\n1,the movie\n,no id\n2,\n1,again\n3,too,many\n4,"two\nlines"\n')
    explain_corpus(job(tiny_classifier_dir, tmp_path / "in.csv", tmp_path / "csv.parquet"))
    assert [(r["id"], r["line"]) for r in read_output(tmp_path / "csv.parquet")] == [("1", 2), ("4", 8)]
    errors = read_jsonl(tmp_path / "csv.parquet.errors.jsonl")
    assert [e["line"] for e in errors] == [3, 4, 5, 6] and errors[-1]["reason"] == "3 columns, the header has 2"


def test_bytes_that_are_not_utf8_make_a_bad_row_and_a_byte_order_mark_is_skipped(tmp_path):
    from expnet.corpus.readers import BadRow, Record, read_rows

    # Once explained as "good \ufffd film" (a replacement character for a word, and a score).
    cases = {
        "in.jsonl": b'\xef\xbb\xbf{"id": "a", "text": "good \xff film"}\n{"id": "b", "text": "fine"}\n',
        "in.txt": b"\xef\xbb\xbfgood \xff film\r\nfine\n",
        "in.csv": b"\xef\xbb\xbfid,text\r\na,good \xff film\r\nb,fine\r\n",  # Excel's "CSV UTF-8"
    }
    for name, content in cases.items():
        path = tmp_path / name
        path.write_bytes(content)
        bad, good = list(read_rows(path))
        assert isinstance(bad, BadRow) and bad.reason.startswith("not UTF-8 text (byte 0xff at character 6)"), name
        assert isinstance(good, Record) and good.words == ["fine"], name


def test_the_progress_bar_ends_full_over_blank_lines_bad_rows_and_max_examples(tiny_classifier_dir, tmp_path, monkeypatch):
    # Its total once counted blank lines and a quoted CSV value's lines, and bad rows never moved
    # it: the bar stopped short of its total.
    from tqdm import tqdm

    ends: list[tuple[int, int]] = []

    class RecordingBar(tqdm):
        def close(self):
            ends.append((self.n, self.total))
            super().close()

    monkeypatch.setattr("expnet.corpus.runner.tqdm", RecordingBar)
    (tmp_path / "in.txt").write_text("the movie\n\nwas good\n   \nfine\n\n")
    (tmp_path / "in.csv").write_text('id,text\n1,the movie\n,no id\n\n4,"two\nlines"\n5,fine\n')
    jsonl = ["{not json", json.dumps({"id": "a", "text": "good"}), "", json.dumps({"id": "b"}), json.dumps({"id": "c", "text": "fun"})]
    (tmp_path / "in.jsonl").write_text("\n".join([*jsonl, *jsonl[1:2]]) + "\n")  # and a duplicate id
    for name, max_examples, read in [("in.txt", None, 3), ("in.csv", None, 4), ("in.jsonl", None, 5), ("in.jsonl", 1, 2)]:
        out = tmp_path / f"{name}-{max_examples}.parquet"
        explain_corpus(job(tiny_classifier_dir, tmp_path / name, out, max_examples=max_examples), progress=True)
        assert ends[-1] == (read, read), (name, max_examples)


def test_max_examples_counts_good_rows(tiny_classifier_dir, tmp_path):
    source = write_input(tmp_path, "jsonl", corpus())
    summary = explain_corpus(job(tiny_classifier_dir, source, tmp_path / "out.jsonl", max_examples=5))
    assert summary.rows == 5 and [r["id"] for r in read_output(tmp_path / "out.jsonl")] == [f"t{i}" for i in range(5)]


def test_unknown_formats_and_missing_columns_are_one_line_errors(tiny_classifier_dir, tmp_path):
    source = write_input(tmp_path, "parquet", corpus())
    with pytest.raises(ExpnetError, match="give a .parquet or .jsonl file"):
        explain_corpus(job(tiny_classifier_dir, source, tmp_path / "out.csv"))
    with pytest.raises(ExpnetError, match="unknown format .xml"):
        explain_corpus(job(tiny_classifier_dir, tmp_path / "in.xml", tmp_path / "out.jsonl"))
    with pytest.raises(ExpnetError, match="in.jsonl: no such file"):
        explain_corpus(job(tiny_classifier_dir, tmp_path / "in.jsonl", tmp_path / "out.jsonl"))
    (tmp_path / "texts.jsonl").mkdir()  # once also "no such file"
    with pytest.raises(ExpnetError, match="texts.jsonl: a folder; give a"):
        explain_corpus(job(tiny_classifier_dir, tmp_path / "texts.jsonl", tmp_path / "out.jsonl"))
    with pytest.raises(ExpnetError, match="no column 'body' \\(--text-field\\); its columns: id, text"):
        explain_corpus(job(tiny_classifier_dir, source, tmp_path / "out.jsonl", text_field="body"))


def test_a_jsonl_input_without_the_fields_or_an_empty_input_is_refused_before_any_work(tiny_classifier_dir, tmp_path):
    source = write_input(tmp_path, "jsonl", corpus())
    with pytest.raises(ExpnetError, match="none of its first 13 rows has 'body' \\(--text-field\\); their fields: id, text"):
        explain_corpus(job(tiny_classifier_dir, source, tmp_path / "out.jsonl", text_field="body"))
    with pytest.raises(ExpnetError, match="has 'key' \\(--id-field\\); their fields: id, text"):
        explain_corpus(job(tiny_classifier_dir, source, tmp_path / "out.jsonl", id_field="key"))
    assert not (tmp_path / ".out.jsonl.parts").exists()
    # One row with the field is enough: the others are bad rows, as before.
    source.write_text('{"id": 1}\n{"id": 2, "text": "good fun"}\n{"id": 3, "text": "not JSON\n')
    summary = explain_corpus(job(tiny_classifier_dir, source, tmp_path / "out.jsonl"))
    assert (summary.rows, summary.bad_rows) == (1, 2)
    reasons = [e["reason"] for e in read_jsonl(tmp_path / "out.jsonl.errors.jsonl")]
    assert reasons[0] == "missing field 'text'" and reasons[1].startswith("not JSON: Unterminated string")
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(ExpnetError, match="empty.csv is empty: give a file with one text per row"):
        explain_corpus(job(tiny_classifier_dir, empty, tmp_path / "e.jsonl"))


def test_a_damaged_parquet_input_is_one_line(tiny_classifier_dir, tmp_path):
    whole = write_input(tmp_path, "parquet", corpus()).read_bytes()
    cut, scrambled = tmp_path / "cut.parquet", tmp_path / "scrambled.parquet"
    cut.write_bytes(whole[: len(whole) // 2])  # no footer: fails on opening
    scrambled.write_bytes(whole[:4] + bytes(len(whole) // 2 - 4) + whole[len(whole) // 2 :])  # footer intact, pages not
    for source in (cut, scrambled):
        with pytest.raises(ExpnetError, match=f"--input {source} is not a readable Parquet file"):
            explain_corpus(job(tiny_classifier_dir, source, tmp_path / f"{source.stem}.jsonl"))
    assert not (tmp_path / ".cut.jsonl.parts").exists()  # refused before any work


def test_resume_refuses_a_parts_folder_with_other_settings(tiny_classifier_dir, tmp_path):
    source = write_input(tmp_path, "jsonl", corpus())
    PartStore(tmp_path / "out.jsonl", {"batch_size": 8}).open()
    with pytest.raises(ExpnetError, match="other settings \\(batch_size: 8 then, 4 now\\)"):
        explain_corpus(job(tiny_classifier_dir, source, tmp_path / "out.jsonl"))


def test_parts_cut_by_an_older_reader_are_not_resumed(tiny_classifier_dir, tmp_path):
    # A lone "\r" once started a row: parts numbered that way, resumed now, lost and shifted texts.
    source = write_input(tmp_path, "jsonl", corpus())
    plan = job(tiny_classifier_dir, source, tmp_path / "out.jsonl")
    earlier = {**plan.settings(plan.load()[1]), "reader": 1}
    PartStore(tmp_path / "out.jsonl", earlier).open()
    with pytest.raises(ExpnetError, match=f"other settings \\(reader: 1 then, {READER_VERSION} now\\)"):
        explain_corpus(plan)


def test_a_resume_never_mixes_two_models_of_one_folder(tmp_path):
    import conftest

    conftest.build_tiny_classifier(tmp_path / "clf")
    source = write_input(tmp_path, "jsonl", corpus(4))
    first = job(str(tmp_path / "clf"), source, tmp_path / "out.jsonl").settings(get_explainer("raw_attention"))
    PartStore(tmp_path / "out.jsonl", first).open()  # a half-finished run
    conftest.build_tiny_classifier(tmp_path / "clf", seed=7)  # the folder rebuilt in place
    with pytest.raises(ExpnetError, match="other settings \\(classifier_files: "):
        explain_corpus(job(str(tmp_path / "clf"), source, tmp_path / "out.jsonl"))


def test_dtype_reaches_the_classifier_and_a_resume_never_mixes_precisions(tiny_classifier_dir, tmp_path):
    source = write_input(tmp_path, "jsonl", corpus(4))
    half = job(tiny_classifier_dir, source, tmp_path / "out.jsonl", dtype="bfloat16")
    classifier, _ = half.load()
    assert next(classifier.model.parameters()).dtype == torch.bfloat16
    assert half.settings(get_explainer("raw_attention"))["dtype"] == "bfloat16"
    assert "dtype" not in job(tiny_classifier_dir, source, tmp_path / "out.jsonl").settings(get_explainer("raw_attention"))
    PartStore(tmp_path / "out.jsonl", half.settings(get_explainer("raw_attention"))).open()  # a half-finished bf16 run
    with pytest.raises(ExpnetError, match="other settings"):
        explain_corpus(job(tiny_classifier_dir, source, tmp_path / "out.jsonl"))


def test_cli_corpus_mode(tiny_classifier_dir, tmp_path, capsys):
    source = write_input(tmp_path, "csv", corpus())
    out = tmp_path / "out.parquet"
    argv = ["explain", "--classifier", tiny_classifier_dir, "--explainer", "raw_attention", "--input", str(source)]
    assert main([*argv, "--output", str(out), "--batch-size", "4"]) == 0
    assert "13 texts" in capsys.readouterr().err and len(read_output(out)) == 13
    assert main([*argv, "--output", str(out), "the movie"]) == 2
    assert main([*argv]) == 2
    assert "both --input FILE and --output FILE" in capsys.readouterr().err
    # Options one mode reads are refused in the other, not ignored.
    text_mode = ["explain", "--classifier", tiny_classifier_dir, "--explainer", "raw_attention", "the movie"]
    assert main([*text_mode, "--engine", "ray", "--max-examples", "3"]) == 2
    assert "--max-examples, --engine belong to corpus mode" in capsys.readouterr().err
    assert main([*argv, "--output", str(tmp_path / "o.jsonl"), "--num-workers", "4"]) == 2
    assert "--num-workers set up Ray workers; add --engine ray" in capsys.readouterr().err


def test_a_ray_job_says_in_its_driver_that_the_shipped_expnet_is_unmeasured(tiny_classifier_dir, tmp_path, monkeypatch):
    # The actors' warnings never reach the user (log_to_driver=False): the driver must say it.
    from expnet.corpus import ray_engine
    from expnet.errors import UnmeasuredWarning

    monkeypatch.setattr(ray_engine, "import_ray", lambda: None)
    monkeypatch.setattr(ray_engine, "explain_on_ray", lambda *args: iter(()))  # no cluster: nothing explained
    source = write_input(tmp_path, "jsonl", corpus(4))
    with pytest.warns(UnmeasuredWarning, match="2-layer x 2-head classifier are unmeasured"):
        explain_corpus(job(tiny_classifier_dir, source, tmp_path / "out.jsonl", explainer="expnet"), engine="ray")


def test_ray_engine_without_ray_says_how_to_install_it(tiny_classifier_dir, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray now fails as if not installed
    source = write_input(tmp_path, "jsonl", corpus())
    with pytest.raises(ExpnetError, match=r"pip install 'expnet\[ray\]'"):
        explain_corpus(job(tiny_classifier_dir, source, tmp_path / "out.jsonl"), engine="ray")


SLOW_RUN = """
import sys, time
from expnet.corpus import CorpusJob, explain_corpus
from expnet.explainers import get_explainer
from expnet.explainers.attention import RawAttention

class SlowAttention(RawAttention):
    name = "slow_attention"

    def explain_batch(self, classifier, batch, targets):
        time.sleep(0.25)  # slow enough that the kill lands between parts
        return super().explain_batch(classifier, batch, targets)

classifier, source, output = sys.argv[1:]
explain_corpus(CorpusJob(classifier, SlowAttention(batch_size=2), source, output, batch_size=2, part_size=2))
"""


def test_kill_9_mid_run_then_rerun_completes_with_every_id_once(tiny_classifier_dir, tmp_path):
    rows = corpus(40)
    source = write_input(tmp_path, "jsonl", rows)
    out = tmp_path / "out.parquet"
    script = tmp_path / "slow_run.py"
    script.write_text(textwrap.dedent(SLOW_RUN))
    command = [sys.executable, str(script), tiny_classifier_dir, str(source), str(out)]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    process = subprocess.Popen(command, env=env, stderr=subprocess.DEVNULL)
    parts = tmp_path / ".out.parquet.parts"
    deadline = time.monotonic() + 120
    while len(list(parts.glob("part-*.parquet"))) < 3 and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    written = len(list(parts.glob("part-*.parquet")))
    assert 3 <= written < 21 and not out.exists()  # killed mid-run, nothing under the output's name
    subprocess.run(command, env=env, check=True, stderr=subprocess.DEVNULL)
    resumed = read_output(out)
    assert [r["id"] for r in resumed] == [i for i, _ in rows]  # every id exactly once, in input order
    assert not parts.exists()
    explain_corpus(job(tiny_classifier_dir, source, tmp_path / "straight.parquet", batch_size=2))
    assert_same_explanations(resumed, read_output(tmp_path / "straight.parquet"))


@pytest.fixture(scope="module")
def local_ray():
    """One local Ray for the Ray tests, started and stopped here (CI installs the ray extra)."""
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        yield ray
    finally:
        ray.shutdown()


class DiesOnce(RawAttention):
    """Kills its worker process at its first batch (once per marker file): Ray must retry."""

    name = "dies_once"

    def __init__(self, marker: str, batch_size: int = 4, seed: int = 0):
        super().__init__(batch_size=batch_size, seed=seed)
        self.marker = marker

    def explain_batch(self, classifier, batch, targets):
        if not os.path.exists(self.marker):
            open(self.marker, "w").close()
            os._exit(1)
        return super().explain_batch(classifier, batch, targets)


@pytest.mark.ray
def test_ray_gives_the_same_rows_scores_and_errors_as_local(tiny_classifier_dir, tmp_path, local_ray):
    source = write_input(tmp_path, "jsonl", corpus(30))
    with source.open("a") as handle:
        handle.write("{broken\n" + json.dumps({"id": "t3", "text": "a duplicate"}) + "\n")
    local = explain_corpus(job(tiny_classifier_dir, source, tmp_path / "local.parquet"))
    on_ray = explain_corpus(job(tiny_classifier_dir, source, tmp_path / "ray.parquet"), engine="ray", num_workers=1)
    assert on_ray.rows == local.rows == 31 and on_ray.bad_rows == local.bad_rows == 2
    assert_same_explanations(read_output(tmp_path / "ray.parquet"), read_output(tmp_path / "local.parquet"))
    assert (tmp_path / "ray.parquet.errors.jsonl").read_text() == (tmp_path / "local.parquet.errors.jsonl").read_text()


@pytest.mark.ray
def test_ray_worker_death_is_retried_and_every_id_comes_once(tiny_classifier_dir, tmp_path, local_ray):
    local_ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # workers cannot import this test module
    rows = corpus(20)
    source = write_input(tmp_path, "jsonl", rows)
    marker = tmp_path / "died"
    explainer = DiesOnce(str(marker))
    explain_corpus(job(tiny_classifier_dir, source, tmp_path / "ray.jsonl", explainer=explainer), engine="ray")
    assert marker.exists()  # a worker did die
    rows_out = read_output(tmp_path / "ray.jsonl")
    assert [r["id"] for r in rows_out] == [i for i, _ in rows]
    explain_corpus(job(tiny_classifier_dir, source, tmp_path / "local.jsonl"))
    assert_same_explanations(rows_out, read_output(tmp_path / "local.jsonl"))
