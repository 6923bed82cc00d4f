"""The ``petard`` command: Firecracker's command line, plus ``--backend``, the device-plugin
switches, and the ``petard plugins`` subcommand (see :mod:`petard.api.plugins_command`).

Flags, defaults, log lines and exit codes follow upstream's ``src/firecracker/src/main.rs``
so that scripts written for ``firecracker`` run unchanged. Heavy modules (flask, pydantic,
cheroot) are imported only after the API socket is bound: a client can connect as soon as
the process has started, and its first request is served once the server is up.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
import time

from petard import __version__ as PETARD_VERSION
from petard.api import wire
from petard.api.plugin_flags import add_plugin_flags, plugin_settings
from petard.core import logger as vmm_logging
from petard.core.backend import BACKEND_NAMES, DEFAULT_BACKEND
from petard.core.exit_codes import ExitCode

log = vmm_logging.get("main")

_IGNORED_FLAGS = ("seccomp_filter", "no_seccomp", "enable_pci")


class _ArgumentParser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # upstream exits 153 on argument errors
        sys.stderr.write(f"Arguments parsing error: {message} \n\nFor more information try --help.\n")
        raise SystemExit(ExitCode.ARG_PARSING)


def build_parser() -> argparse.ArgumentParser:
    parser = _ArgumentParser(
        prog="petard",
        description="A Firecracker-compatible microVM monitor for aarch64 guests "
        "(vCPUs on KVM, or emulated by Unicorn on any host).",
    )
    add = parser.add_argument
    add("--api-sock", default=wire.DEFAULT_API_SOCKET, help="Path to unix domain socket used by the API.")
    add("--id", default=vmm_logging.DEFAULT_INSTANCE_ID, help="MicroVM unique identifier.")
    add("--config-file", help="Path to a file that contains the microVM configuration in JSON format.")
    add("--no-api", action="store_true",
        help="Optional parameter which allows starting and using a microVM without an active API socket.")
    add("--metadata", help="Path to a file that contains metadata in JSON format to add to the mmds.")
    add("--log-path", help="Path to a fifo or a file used for configuring the logger on startup.")
    add("--level", help="Set the logger level.")
    add("--module", help="Set the logger module filter.")
    add("--show-level", action="store_true", help="Whether or not to output the level in the logs.")
    add("--show-log-origin", action="store_true",
        help="Whether or not to include the file path and line number of the log's origin.")
    add("--metrics-path", help="Path to a fifo or a file used for configuring the metrics on startup.")
    add("--boot-timer", action="store_true",
        help="Whether or not to load boot timer device for logging elapsed time since InstanceStart command.")
    add("--http-api-max-payload-size", type=int, default=wire.DEFAULT_MAX_PAYLOAD,
        help="Http API request payload max size, in bytes.")
    add("--mmds-size-limit", type=int, help="Mmds data store limit, in bytes.")
    add("--start-time-us", type=int, help="Process start time (wall clock, microseconds).")
    add("--start-time-cpu-us", type=int, help="Process start CPU time (wall clock, microseconds).")
    add("--parent-cpu-time-us", type=int, help="Parent process CPU time (wall clock, microseconds).")
    add("--seccomp-filter", help="Accepted for compatibility; petard installs no seccomp filter.")
    add("--no-seccomp", action="store_true", help="Accepted for compatibility; petard installs no seccomp filter.")
    add("--enable-pci", action="store_true", help="Accepted for compatibility; petard has no PCI transport.")
    add("--version", action="store_true", help="Print the binary version number.")
    add("--backend", choices=BACKEND_NAMES, default=DEFAULT_BACKEND,
        help="vCPU backend: kvm (aarch64 host with /dev/kvm) or unicorn (CPU emulation, any host).")
    add("--gic-version", type=int, choices=(2, 3),
        help="Interrupt controller for the guest: 3 or 2. Default: the backend chooses "
        "(Unicorn: 3; KVM: what the host offers, v3 else v2).")
    add_plugin_flags(parser)
    return parser


INSTANCE_ID_MAX_LEN = 64
PLUGINS_SUBCOMMAND = "plugins"


def instance_id_error(instance_id: str) -> str | None:
    """Upstream's ``validate_instance_id``: 1-64 characters, alphanumeric or '-'."""
    if not 1 <= len(instance_id) <= INSTANCE_ID_MAX_LEN:
        return f"length {len(instance_id)} is not between 1 and {INSTANCE_ID_MAX_LEN}"
    for position, char in enumerate(instance_id):
        if not (char == "-" or char.isalnum()):
            return f"invalid character {char!r} at position {position}"
    return None


def version_text() -> str:
    return f"Firecracker v{wire.FIRECRACKER_VERSION}\n\npetard {PETARD_VERSION}"


def main(argv: list[str] | None = None) -> int:
    started_ns = time.monotonic_ns()
    started_cpu_ns = time.process_time_ns()
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == [PLUGINS_SUBCOMMAND]:  # Firecracker takes no positional arguments
        from petard.api.plugins_command import run_plugins_command

        return run_plugins_command(argv[1:])
    args = build_parser().parse_args(argv)
    if args.version:
        print(version_text())
        return ExitCode.OK
    if args.no_api and not args.config_file:
        build_parser().error("--no-api requires --config-file")
    id_error = instance_id_error(args.id)
    if id_error:
        build_parser().error(f"Invalid instance ID: {id_error}")
    if args.seccomp_filter and args.no_seccomp:
        build_parser().error("--seccomp-filter and --no-seccomp are mutually exclusive")
    return Vmm(args, started_ns, started_cpu_ns).run()


class Vmm:
    """One petard process: logger, metrics, controller, API server, and the wait for the end."""

    def __init__(self, args: argparse.Namespace, started_ns: int, started_cpu_ns: int):
        self.args = args
        self.started_ns = started_ns
        self.started_cpu_ns = started_cpu_ns
        self.exit_code: int | None = None

    def run(self) -> int:
        args = self.args
        threading.current_thread().name = "main"
        self.vmm_logger = vmm_logging.VmmLogger()
        if args.level is not None and vmm_logging.parse_level(args.level) is None:
            sys.stderr.write(
                f"Invalid value for logger level: {args.level}.Possible values: [Error, Warning, Info, Debug]\n"
            )
            return ExitCode.BAD_CONFIGURATION
        from petard.core.faults import VmmActionError

        try:
            self.vmm_logger.configure(
                instance_id=args.id, log_path=args.log_path, level=args.level, show_level=args.show_level,
                show_origin=args.show_log_origin, module=args.module,
            )
        except VmmActionError as error:
            sys.stderr.write(f"Could not initialize logger: {error}\n")
            return ExitCode.GENERIC_ERROR
        log.info("Running Firecracker v%s", wire.FIRECRACKER_VERSION)
        log.info("petard %s, vCPU backend: %s", PETARD_VERSION, args.backend)
        for flag in _IGNORED_FLAGS:
            if getattr(args, flag):
                log.warning("--%s is accepted for compatibility and has no effect in petard.", flag.replace("_", "-"))

        sock = None
        if not args.no_api:
            from petard.api.unix_socket import SocketInUseError, bind_api_socket

            try:
                sock = bind_api_socket(args.api_sock)
            except SocketInUseError as error:
                log.error("RunWithApi error: %s", error.strerror)
                return self._finish(ExitCode.GENERIC_ERROR)
            log.info('Listening on API socket ("%s").', args.api_sock)

        from petard.api.dispatch import Dispatcher
        from petard.core.controller import Controller
        from petard.core.metrics import Metrics
        from petard.core.plugins import PluginError, create_from_settings, set_plugin_manager
        from petard.core.vmm import make_starter

        try:
            set_plugin_manager(create_from_settings(plugin_settings(args)))
        except PluginError as error:
            log.error("Could not load the device plugins: %s", error)
            return self._finish(ExitCode.GENERIC_ERROR)

        self.metrics = Metrics()
        if args.metrics_path:
            try:
                self.metrics.configure(args.metrics_path)
            except VmmActionError as error:
                log.error("Could not initialize metrics: %s", error)
                return self._finish(ExitCode.GENERIC_ERROR)
        self.controller = Controller(
            instance_id=args.id,
            vmm_version=wire.FIRECRACKER_VERSION,
            starter=make_starter(args.backend, boot_timer=args.boot_timer, gic_version=args.gic_version),
            vmm_logger=self.vmm_logger,
            metrics=self.metrics,
            mmds_size_limit=args.mmds_size_limit or args.http_api_max_payload_size,
        )
        dispatcher = Dispatcher(self.controller)
        self._install_signal_handlers()

        if sock is not None:
            from petard.api.http import create_app, serve

            app = create_app(dispatcher, args.http_api_max_payload_size)
            threading.Thread(target=serve, args=(sock, args.api_sock, app), name="fc_api_server",
                             daemon=True).start()
            self._record_startup_time()
            log.info(wire.API_SERVER_STARTED)

        if args.config_file:
            if not self._replay_config(dispatcher):
                return self._finish(ExitCode.GENERIC_ERROR)

        code = self.controller.wait_for_exit()
        return self._finish(code)

    def _replay_config(self, dispatcher) -> bool:
        from petard.api.config_file import ConfigFileError, failed_message, replay

        try:
            with open(self.args.config_file, encoding="utf-8") as config:
                text = config.read()
            metadata = None
            if self.args.metadata:
                with open(self.args.metadata, encoding="utf-8") as metadata_file:
                    metadata = metadata_file.read()
            replay(dispatcher, text, metadata)
        except (ConfigFileError, OSError) as error:
            log.error(failed_message(ConfigFileError(str(error))))
            return False
        log.info(wire.CONFIG_FILE_STARTED)
        return True

    def _record_startup_time(self) -> None:
        args = self.args
        now_us = time.monotonic_ns() // 1000
        start_us = args.start_time_us if args.start_time_us is not None else self.started_ns // 1000
        self.metrics.store("api_server", "process_startup_time_us", max(0, now_us - start_us))
        cpu_us = time.process_time_ns() // 1000
        start_cpu_us = args.start_time_cpu_us if args.start_time_cpu_us is not None else 0
        self.metrics.store("api_server", "process_startup_time_cpu_us",
                           max(0, cpu_us - start_cpu_us) + (args.parent_cpu_time_us or 0))

    def _install_signal_handlers(self) -> None:
        def on_signal(signum: int, _frame) -> None:
            log.info("Shutting down VM after intercepting signal %d", signum)
            self.controller.shutdown()
            os._exit(self._finish(ExitCode.OK))

        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(signum, on_signal)

    def _finish(self, code: int) -> int:
        metrics = getattr(self, "metrics", None)
        if metrics is not None:
            metrics.flush()
        if code == ExitCode.OK:
            log.info("Firecracker exiting successfully. exit_code=0")
        else:
            log.error("Firecracker exiting with error. exit_code=%d", code)
        sys.stdout.flush()
        return code


def entry() -> None:
    """Console-script entry that leaves without waiting for daemon threads."""
    code = main()
    sys.stdout.flush()
    os._exit(code)
