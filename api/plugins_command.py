"""``petard plugins``: list the device plugins a VMM started with the same switches would load.

    petard plugins [--json] [--no-plugin-autoload] [--block-plugin NAME] [--trace-plugins]

One line per plugin, in registration order (built-ins first): name, version, where it comes
from (``built-in`` or the distribution of its entry point), the hooks it implements and the
device types it provides. ``--json`` prints the same as a JSON list. A plugin that fails to
load ends the command with exit code 1 and a message naming it.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict

from petard.api.plugin_flags import add_plugin_flags, plugin_settings
from petard.core.exit_codes import ExitCode

COLUMNS = ("name", "version", "source", "hooks", "device types")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="petard plugins",
                                     description="List the device plugins petard loads, with versions and hooks.")
    parser.add_argument("--json", action="store_true", help="Print a JSON list instead of a table.")
    add_plugin_flags(parser)
    return parser


def _rows(infos) -> list[tuple[str, ...]]:
    return [(info.name, info.version or "-", info.source, ",".join(info.hooks) or "-",
             ",".join(info.device_types) or "-") for info in infos]


def format_table(infos) -> str:
    rows = [tuple(column.upper() for column in COLUMNS), *_rows(infos)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(COLUMNS))]
    return "\n".join("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in rows)


def run_plugins_command(argv: list[str]) -> int:
    from petard.core.plugins import PluginError, create_from_settings

    args = build_parser().parse_args(argv)
    settings = plugin_settings(args)
    if settings.trace:  # the trace goes to stderr, the listing to stdout
        import logging

        logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(name)s: %(message)s")
    try:
        manager = create_from_settings(settings)
        infos = manager.plugin_infos()
    except PluginError as error:
        sys.stderr.write(f"petard plugins: {error}\n")
        return ExitCode.GENERIC_ERROR
    if args.json:
        print(json.dumps([asdict(info) for info in infos], indent=2))
    else:
        print(format_table(infos))
    return ExitCode.OK
