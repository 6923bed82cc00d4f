"""Run control of a KVM VM: pause, resume, stop and the VM's exit, in one object that the VM
and its threads (one per vCPU, the device clock) share.

The threads read three flags lock-free at the top of their loops (`control_requested` is
set whenever one of the others is); everything else goes through one condition. The first
exit reported wins (`finish`); once there is one, every thread is asked to stop. The object
knows nothing of vCPUs: it is given the function that kicks every thread out of KVM_RUN or
its sleep.
"""

from __future__ import annotations

import threading
from typing import Callable

from petard.core.backend import ExitReason, PauseTimeoutError, VmExit


class RunControl:
    def __init__(self, kick_all: Callable[[], None]):
        self._kick_all = kick_all
        self._condition = threading.Condition()
        self.control_requested = False      # read lock-free by the thread loops
        self.pause_requested = False
        self.stop_requested = False
        self._parked = 0
        self._running = 0
        self._exit: VmExit | None = None
        self._exited = threading.Event()

    # --- the VM's side ------------------------------------------------------------------

    def threads_starting(self, count: int) -> None:
        with self._condition:
            self._running = count

    @property
    def paused(self) -> bool:
        with self._condition:
            return self.pause_requested and self._parked == self._running

    def pause(self, timeout: float | None) -> None:
        """Ask every thread to park; returns once all have (or the VM has exited). A pause
        that times out is withdrawn: the threads that did park go on, as if never asked."""
        with self._condition:
            self.pause_requested = True
            self.control_requested = True
        self._kick_all()
        with self._condition:
            if not self._condition.wait_for(
                    lambda: self._parked == self._running or self._exit is not None, timeout):
                self.pause_requested = False
                self.control_requested = self.stop_requested
                self._condition.notify_all()
                raise PauseTimeoutError("the vCPUs did not stop in time")

    def resume(self) -> None:
        with self._condition:
            self.pause_requested = False
            self.control_requested = self.stop_requested
            self._condition.notify_all()

    def stop_threads(self) -> None:
        """Ask every thread to end (without recording an exit)."""
        with self._condition:
            self.stop_requested = True
            self.control_requested = True
            self._condition.notify_all()
        self._kick_all()

    @property
    def exited(self) -> bool:
        return self._exited.is_set()

    def wait_exit(self) -> VmExit:
        self._exited.wait()
        assert self._exit is not None
        return self._exit

    # --- the threads' side --------------------------------------------------------------

    def finish(self, vm_exit: VmExit) -> None:
        """Record the VM's exit (the first one wins) and get every thread to stop."""
        with self._condition:
            if self._exit is None:
                self._exit = vm_exit
        self.stop_threads()
        self._exited.set()

    def park_until_resumed(self) -> None:
        with self._condition:
            self._parked += 1
            self._condition.notify_all()
            self._condition.wait_for(lambda: not self.pause_requested or self.stop_requested)
            self._parked -= 1

    def thread_ended(self, name: str, vm_exit: VmExit | None) -> None:
        """A thread's loop returned: with the exit it ran into, or None when asked to stop.
        A thread that ends otherwise ends the VM."""
        if vm_exit is not None:
            self.finish(vm_exit)
        with self._condition:
            self._running -= 1
            self._condition.notify_all()
            unexpected = not self.stop_requested
        if unexpected:
            self.finish(VmExit(ExitReason.FATAL_ERROR, f"{name} stopped unexpectedly"))
