"""Printing rows as a table, JSON or CSV: the one place the CLI formats results."""

from __future__ import annotations

import csv
import json
import sys
from collections.abc import Sequence
from typing import Any, TextIO

from rich.console import Console
from rich.table import Table
from rich.text import Text

FORMATS = ("table", "json", "csv")


def write_rows(
    columns: Sequence[str], rows: Sequence[Sequence[Any]], fmt: str, out: TextIO | None = None,
    *, highlight: tuple[str, str] | None = None,
) -> None:
    """Write `rows` under `columns` to `out` as "table", "json" (a list of objects) or "csv".

    `highlight` names the start/end markers in cell text to show in bold in a table.
    """
    out = out or sys.stdout
    if fmt == "json":
        json.dump([dict(zip(columns, row, strict=True)) for row in rows], out, ensure_ascii=False, indent=2,
                  default=str)
        out.write("\n")
    elif fmt == "csv":
        writer = csv.writer(out)
        writer.writerow(columns)
        writer.writerows(rows)
    else:
        table = Table(*columns, show_lines=False, expand=False)
        for row in rows:
            table.add_row(*(_cell(value, highlight) for value in row))
        console = Console(file=out, soft_wrap=False, width=None if out.isatty() else 160)
        console.print(table)


def _cell(value: Any, highlight: tuple[str, str] | None) -> Text:
    text = "" if value is None else str(value)
    if not highlight or highlight[0] not in text:
        return Text(text)
    start, end = highlight
    cell = Text()
    for index, part in enumerate(text.replace(end, start).split(start)):
        cell.append(part, style="bold yellow" if index % 2 else None)
    return cell


_PLURAL_UNITS = {"years": "year", "months": "month", "weeks": "week", "days": "day", "hours": "hour",
                 "points": "point"}


def format_figure(figure: dict[str, Any]) -> str:
    """A stored figure as people read it: '46,946 count (2023, JP:HSP)', '1 year', '20.8 percent'."""
    value = float(figure["value"])
    number = f"{value:,.0f}" if value.is_integer() else f"{value:,}"
    unit = figure["unit"]
    if value == 1:
        unit = _PLURAL_UNITS.get(unit, unit)
    detail = ", ".join(str(x) for x in (figure.get("year"), figure.get("visa")) if x)
    return f"{number} {unit}" + (f" ({detail})" if detail else "")
