"""The ``osteo`` command. Expected errors print one line on stderr and exit 2 or 3, never a traceback.

One idea a module: ``parser`` (the arguments, their help text, the argv pre-parser), ``screen`` (osteo screen
and serve: the request and the flow), ``published`` (the commands that read a published run), ``demo`` (its
folder, its inputs, its screen) and ``summary`` (a run's manifest on the terminal). Prefect, Polars and DuckDB
are imported inside the commands that use them, so ``osteo --help`` and a usage error answer at once.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Sequence

from osteo_core.cli import demo, parser, published, screen
from osteo_core.errors import OsteoError

COMMANDS = {
    "screen": screen.cmd_screen,
    "sql": published.cmd_sql,
    "gaps": published.cmd_gaps,
    "worklist": published.cmd_worklist,
    "measures": published.cmd_measures,
    "report": published.cmd_report,
    "serve": screen.cmd_serve,
    "export-research": published.cmd_export_research,
    "explain": published.cmd_explain,
    "demo": demo.cmd_demo,
}


def main(argv: Sequence[str] | None = None) -> int:
    try:
        argv, routing = parser.split_routing(list(sys.argv[1:] if argv is None else argv))
        args = parser.build_parser().parse_args(argv)
        args.routing = routing
    except SystemExit as exit_:  # --help (0) or a usage error (2, already printed in one line)
        return int(exit_.code or 0)
    except OsteoError as err:
        print(f"osteo: {err}", file=sys.stderr)
        return err.exit_code
    terminal = logging.StreamHandler()
    terminal.setLevel(logging.WARNING)  # Prefect's loggers run at INFO for the run's own log, and propagate here
    terminal.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=logging.WARNING, handlers=[terminal])
    try:
        return COMMANDS[args.command](args)
    except OsteoError as err:
        print(f"osteo: {err}", file=sys.stderr)
        for line in getattr(err, "details", []):
            print(line, file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        print("osteo: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader of a pipe went away (osteo gaps | head): stop quietly
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # Python's own flush at exit must not fail again
        return 141  # 128 + SIGPIPE, as a shell reports a command stopped by a closed pipe
