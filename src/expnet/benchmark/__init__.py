"""The benchmark: leave-one-task-out comparison of ExpNet with every registered explainer.

``expnet benchmark`` (``expnet.cli.benchmark``) loads a ``BenchmarkConfig`` (config.py), runs the
protocol (runner.py, one module per step) with cached steps (cache.py) into typed results
(results.py) and writes them (report.py).
"""

from expnet.benchmark.config import BenchmarkConfig, load_config
from expnet.benchmark.results import BenchmarkResults, Outcome, Row, TaskResult
from expnet.benchmark.runner import BenchmarkRunner

__all__ = ["BenchmarkConfig", "BenchmarkResults", "BenchmarkRunner", "Outcome", "Row", "TaskResult", "load_config"]
