"""The device-plugin switches of the command line, shared by ``petard`` and ``petard plugins``."""

from __future__ import annotations

import argparse


def add_plugin_flags(parser: argparse.ArgumentParser) -> None:
    """The device-plugin switches, shared by the VMM and ``petard plugins``."""
    group = parser.add_argument_group("device plugins (petard extension; see docs/plugins.md)")
    group.add_argument("--no-plugin-autoload", action="store_true",
                       help="Load no installed plugins (entry points of group 'petard'); only the built-ins. "
                       "Same as PETARD_DISABLE_PLUGIN_AUTOLOAD=1.")
    group.add_argument("--block-plugin", action="append", default=[], metavar="NAME",
                       help="Never load plugin NAME, built-in or installed (repeatable). "
                       "Adds to PETARD_BLOCK_PLUGINS=a,b.")
    group.add_argument("--trace-plugins", action="store_true",
                       help="Log every plugin hook call. Same as PETARD_TRACE_PLUGINS=1.")


def plugin_settings(args: argparse.Namespace):
    """The environment's plugin settings plus the command line's flags."""
    from petard.core.plugins import PluginSettings

    return PluginSettings.from_environment().with_flags(
        no_autoload=args.no_plugin_autoload, blocked=args.block_plugin, trace=args.trace_plugins)
