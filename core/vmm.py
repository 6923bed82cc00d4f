"""Starting the machine for the controller: resources become a MachineSpec, then a running Vm.

:func:`make_starter` returns the controller's :class:`~petard.core.controller.MachineStarter`.
At InstanceStart it builds the command line with upstream's appends, lists the legacy
devices in upstream's order (serial only when the command line has ``console=``, then the
RTC; the boot timer under ``--boot-timer``), builds the machine on the chosen backend and
runs it on a vCPU thread. When the guest powers off or resets, or the backend fails, the
exit is logged as upstream does and reported to the controller with the process exit code.
"""

from __future__ import annotations

import threading
from concurrent.futures import Future
from typing import Any, Callable

from petard.core import faults, layout
from petard.core import logger as vmm_logging
from petard.core.backend import ExitReason, PauseTimeoutError, VmExit
from petard.core.boot.cmdline import KernelCmdlineError, RootDevice, guest_cmdline
from petard.core.console import HostConsole
from petard.core.device import DevicePlacement
from petard.core.exit_codes import ExitCode
from petard.core.resources import VmResources

log = vmm_logging.get("vmm")

DEVICE_CALL_TIMEOUT_S = 10.0


class DeviceCallTimeout(RuntimeError):
    """A request for a running device was not served in time (the VM's thread is stuck)."""

_EXIT_LINES = {
    ExitReason.POWER_OFF: "Guest powered off (PSCI SYSTEM_OFF).",
    ExitReason.RESET: "Guest requested a reset (PSCI SYSTEM_RESET); like Firecracker, petard stops.",
    ExitReason.STOPPED: "The VMM stopped the guest.",
}


def exit_code_for(vm_exit: VmExit) -> int:
    """Upstream ends with 0 on guest power-off and reset; a failure is a generic error."""
    return ExitCode.GENERIC_ERROR if vm_exit.reason is ExitReason.FATAL_ERROR else ExitCode.OK


class RunningMachine:
    """A built machine running on its vCPU thread; what the controller pauses and resumes."""

    def __init__(self, machine, on_exit: Callable[[int], None], console: HostConsole | None):
        self.machine = machine
        self._on_exit = on_exit
        self._console = console
        self._thread = threading.Thread(target=self._run, name=machine.vm.run_thread_name, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def pause(self) -> None:
        try:
            self.machine.vm.pause()
        except PauseTimeoutError as error:  # the guest ran on without reaching a safe stop point
            raise faults.VmmActionError(f"Internal VMM error: the microVM could not be paused: {error}") from None

    def resume(self) -> None:
        self.machine.vm.resume()

    def call_device(self, name: str, function: Callable[..., Any], *args: Any) -> Any:
        """`function(device, *args)` for the device called `name`, on the VM's thread (device
        code is single-threaded; while the guest is paused nothing else runs it, so it runs
        here); returns its result or raises its exception."""
        device = self.machine.device(name)
        if self.machine.vm.paused or not self._thread.is_alive():
            return function(device, *args)
        future: Future = Future()

        def call() -> None:
            try:
                future.set_result(function(device, *args))
            except BaseException as error:      # handed to the waiting caller
                future.set_exception(error)

        device.ctx.clock.call_soon_threadsafe(call)
        try:
            return future.result(DEVICE_CALL_TIMEOUT_S)
        except TimeoutError:
            raise DeviceCallTimeout(f"the VM's thread did not run the request to device {name!r} "
                                    f"within {DEVICE_CALL_TIMEOUT_S:g} s") from None

    def stop(self) -> None:
        self.machine.vm.stop()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        try:
            vm_exit = self.machine.run()
        except Exception as error:  # the backend itself broke: report, never hang the process
            log.exception("The vCPU loop failed")
            vm_exit = VmExit(ExitReason.FATAL_ERROR, f"vCPU loop failed: {error}")
        finally:
            if self._console is not None:
                self._console.restore()
        if vm_exit.reason is ExitReason.FATAL_ERROR:
            log.error("The guest or the emulator failed: %s", vm_exit.describe())
        else:
            log.info(_EXIT_LINES[vm_exit.reason])
        log.info("Vmm is stopping.")
        try:
            self.machine.close()
        finally:
            self._on_exit(exit_code_for(vm_exit))


BALLOON_DEVICE_TYPE = "virtio-balloon"
BALLOON_DEVICE_NAME = "balloon"
BLOCK_DEVICE_TYPE = "virtio-blk"
ENTROPY_DEVICE_TYPE = "virtio-rng"
ENTROPY_DEVICE_NAME = "entropy"


def drive_device_name(drive_id: str) -> str:
    """The machine's name for the block device of drive `drive_id`."""
    return f"drive:{drive_id}"


def _enum_value(value):
    return getattr(value, "value", value)


def virtio_devices(resources: VmResources) -> list[DevicePlacement]:
    """The virtio devices in upstream's order: the balloon, block devices (root first, then
    insertion order), then entropy; each takes the next virtio-mmio slot and the next GSI."""
    devices = []
    balloon = resources.balloon
    if balloon is not None:
        options = {name: getattr(balloon, name) for name in (
            "amount_mib", "deflate_on_oom", "stats_polling_interval_s", "free_page_hinting", "free_page_reporting")}
        devices.append(DevicePlacement(BALLOON_DEVICE_TYPE, BALLOON_DEVICE_NAME, options=options))
    for drive in resources.drives:
        options = {
            "path": drive.path_on_host,
            "read_only": bool(drive.is_read_only),
            "cache_type": _enum_value(drive.cache_type),
            "rate_limiter": drive.rate_limiter,
            "drive_id": drive.drive_id,
        }
        devices.append(DevicePlacement(BLOCK_DEVICE_TYPE, drive_device_name(drive.drive_id), options=options))
    if resources.entropy is not None:
        devices.append(DevicePlacement(ENTROPY_DEVICE_TYPE, ENTROPY_DEVICE_NAME,
                                       options={"rate_limiter": resources.entropy.rate_limiter}))
    return devices


def root_device(resources: VmResources) -> RootDevice | None:
    """The root drive's part of the command line (upstream: only when it is the root)."""
    if resources.drives and resources.drives[0].is_root_device:
        root = resources.drives[0]
        return RootDevice(partuuid=root.partuuid, read_only=bool(root.is_read_only))
    return None


def machine_devices(resources: VmResources, has_console: bool,
                    console: HostConsole | None) -> list[DevicePlacement]:
    """Every device in upstream's order: the virtio devices first (slots from
    VIRTIO_MMIO_START, GSIs from 0), then the legacy ones (each takes the next free GSI)."""
    devices = virtio_devices(resources)
    if has_console:
        serial_out = resources.serial.serial_out_path if resources.serial is not None else None
        options = {"output": serial_out}
        if console is not None and console.input_fd is not None:
            options["input"] = console.input_fd
        devices.append(DevicePlacement("serial", "serial", layout.SERIAL_START, options=options))
    devices.append(DevicePlacement("rtc", "rtc", layout.RTC_START))
    return devices


def make_starter(backend_name: str, *, boot_timer: bool = False, gic_version: int | None = None,
                 attach_console: bool = True):
    """The controller's machine starter for one backend and the process-wide flags."""

    def start(resources: VmResources, on_exit: Callable[[int], None]) -> RunningMachine:
        from petard.core.machine import Machine, MachineSpec
        from petard.core.plugins import get_plugin_manager

        boot_source = resources.boot_source
        try:
            cmdline = guest_cmdline(boot_source.boot_args, root_device=root_device(resources))
        except KernelCmdlineError as error:
            raise faults.VmmActionError(faults.start_error(f"Invalid kernel command line: {error}")) from None
        console = HostConsole.for_stdin() if attach_console and cmdline.has_console() else None
        spec = MachineSpec(
            kernel_path=boot_source.kernel_image_path,
            initrd_path=boot_source.initrd_path,
            cmdline=str(cmdline),
            vcpu_count=resources.machine.vcpu_count,
            mem_size_mib=resources.machine.mem_size_mib,
            gic_version=gic_version,
            # petard's plugin devices come last: upstream's devices keep their slots and GSIs.
            devices=machine_devices(resources, cmdline.has_console(), console)
            + [config.placement() for config in resources.plugin_devices],
            boot_timer=boot_timer,
            backend=backend_name,
        )
        try:
            machine = Machine.build(spec, get_plugin_manager())
        except Exception as error:
            if console is not None:
                console.restore()
            raise faults.VmmActionError(faults.start_error(str(error))) from None
        running = RunningMachine(machine, on_exit, console)
        if console is not None:
            console.make_raw()
        running.start()
        return running

    return start
