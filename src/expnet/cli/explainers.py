"""expnet explainers: the registry as a table."""

from __future__ import annotations

import json

from rich.console import Console
from rich.table import Table

from expnet.explainers import list_explainers


def register(subparsers) -> None:
    parser = subparsers.add_parser("explainers", help="list the registered explainers")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.set_defaults(func=run)


def run(args) -> int:
    infos = list_explainers()
    if args.json:
        print(json.dumps([vars(i) for i in infos], indent=2))
        return 0
    table = Table(title="explainers (plus 'expnet', the ExpNet that ships with expnet, and any folder made by 'expnet train')")
    # Names and families are what users type and compare: never cut them; the prose columns wrap.
    for column in ("name", "family", "cost per text", "default budget", "signed", "explains"):
        table.add_column(column, no_wrap=column in ("name", "family"))
    for info in infos:
        table.add_row(info.name, info.family, info.cost, info.default_budget, "yes" if info.signed else "no", info.explains)
    console = Console()
    console.width = max(console.width, 110)  # a pipe or a narrow terminal would squash the table
    console.print(table)
    return 0
