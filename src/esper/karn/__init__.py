"""Looking at runs: the live console (and, to come, the HTML run report and run comparison)."""

from esper.karn.console import ConsoleSink, summary_table

__all__ = ["ConsoleSink", "summary_table"]
