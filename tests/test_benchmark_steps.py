"""The benchmark's steps on their own: task preparation through the data API, and a runner used
from Python honouring the config's seed and threads (what the CLI used to do for it)."""

import json
import shutil

import pytest
import torch

from expnet.benchmark import runner as runner_module
from expnet.benchmark.config import TaskConfig, load_config
from expnet.benchmark.runner import BenchmarkRunner
from expnet.benchmark.tasks import prepare_task
from test_benchmark import tiny_config, write_task


def test_a_jsonl_file_without_the_suffix_is_a_jsonl_task(tmp_path, monkeypatch):
    # expnet.data reads any existing file as JSONL; the benchmark must too (it used to take a
    # bare name equal to its stem for a built-in task and fail with a KeyError).
    monkeypatch.chdir(tmp_path)
    write_task(tmp_path / "alpha", 40, 1)
    shutil.copy(tmp_path / "alpha", tmp_path / "alpha.jsonl")
    config = load_config(None, quick=True)
    bare = prepare_task(TaskConfig("alpha", max_examples=8), config)
    suffixed = prepare_task(TaskConfig("alpha.jsonl", max_examples=8), config)
    assert bare.jsonl and bare.name == "alpha" == suffixed.name
    assert bare.eval_split.startswith("jsonl:") and bare.eval_split.endswith(":evaluation")
    # The same seeded split of the same file: the same examples, whatever the file is called.
    for part in ("evaluation", "fit", "validation", "classifier_pool"):
        assert [e.id for e in getattr(bare, part)] == [e.id for e in getattr(suffixed, part)], part
    assert len(bare.evaluation) == 8 and not {e.id for e in bare.evaluation} & {e.id for e in bare.classifier_pool}


def test_runner_from_python_seeds_and_sets_threads_for_its_run(tmp_path, tiny_classifier_dir, monkeypatch):
    config = load_config(tiny_config(tmp_path, tiny_classifier_dir, explainers=("random",)))
    config.threads, config.seed = 1, 11
    seen = {}

    class Stop(Exception):
        pass

    def record(*args, **kwargs):
        seen.update(threads=torch.get_num_threads(), seed=torch.initial_seed())
        raise Stop

    monkeypatch.setattr(runner_module, "prepare_task", record)
    before = torch.get_num_threads()
    with pytest.raises(Stop):
        BenchmarkRunner(config, tmp_path / "out", progress=False).run()
    assert seen == {"threads": 1, "seed": 11}
    assert json.loads((tmp_path / "out" / "config.json").read_text())["seed"] == 11  # written before the work
    assert torch.get_num_threads() == before  # the process's setting comes back after the run
