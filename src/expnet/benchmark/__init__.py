"""The benchmark: leave-one-task-out comparison of ExpNet with every registered explainer.

``expnet benchmark`` (``expnet.cli.benchmark``) loads a ``BenchmarkConfig`` (config.py), runs the
protocol (runner.py) with cached steps (cache.py) and writes the results (report.py).
"""

from expnet.benchmark.config import BenchmarkConfig, load_config
from expnet.benchmark.runner import BenchmarkRunner, Outcome

__all__ = ["BenchmarkConfig", "BenchmarkRunner", "Outcome", "load_config"]
