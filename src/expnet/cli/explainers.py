"""expnet explainers: the registry as a table."""

from __future__ import annotations

import json
from itertools import groupby

from rich import box
from rich.console import Console
from rich.table import Table

from expnet.cli.common import add_seed
from expnet.explainers import list_explainers


def register(subparsers) -> None:
    parser = subparsers.add_parser("explainers", help="list the registered explainers")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    add_seed(parser)  # every command takes one; a listing has nothing random in it
    parser.set_defaults(func=run)


def explainers_table() -> Table:
    """The registry, one section per family, narrow enough for an 80-column terminal: the
    family heads its section instead of taking a column, the default budget follows the cost
    it sets, names never wrap and nothing is cut with an ellipsis."""
    table = Table(
        title="explainers (plus 'expnet', the ExpNet that ships, and any folder made by 'expnet train')",
        box=box.SIMPLE_HEAD,
        padding=(0, 1, 0, 0),
    )
    table.add_column("name", no_wrap=True)
    table.add_column("signed", no_wrap=True)
    table.add_column("explains", no_wrap=True)
    table.add_column("cost per text; default budget", overflow="fold")
    infos = sorted(list_explainers(), key=lambda info: (info.family, info.name))
    for family, members in groupby(infos, key=lambda info: info.family):
        table.add_row(f"[bold]{family}[/bold]")
        for info in members:
            budget = "" if info.default_budget == "-" else f"; {info.default_budget}"
            table.add_row(f"  {info.name}", "yes" if info.signed else "no", info.explains, info.cost + budget)
        table.add_section()
    return table


def run(args) -> int:
    if args.json:
        print(json.dumps([vars(i) for i in list_explainers()], indent=2))
        return 0
    Console().print(explainers_table())
    return 0
