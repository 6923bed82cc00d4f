"""RunControl, the KVM VM's pause/resume/stop and first-exit state, without /dev/kvm: plain
threads stand in for the vCPU loops (they check the same flags and park the same way)."""

import threading
import time
import unittest

from petard.backends.kvm.control import RunControl
from petard.core.backend import ExitReason, PauseTimeoutError, VmExit

WAIT_S = 5.0


class _Loops:
    """Threads that run until asked to stop, parking while a pause is asked for."""

    def __init__(self, control, count, park=True):
        self.control = control
        self.iterations = [0] * count
        self.threads = [threading.Thread(target=self._main, args=(index, park), daemon=True)
                        for index in range(count)]
        control.threads_starting(count)
        for thread in self.threads:
            thread.start()

    def _main(self, index, park):
        control = self.control
        while True:
            if control.control_requested:
                if control.stop_requested:
                    break
                if control.pause_requested and park:
                    control.park_until_resumed()
                    continue
            self.iterations[index] += 1
            time.sleep(0.001)
        control.thread_ended(f"loop {index}", None)


class RunControlTest(unittest.TestCase):
    def setUp(self):
        self.kicks = 0

    def kick(self):
        self.kicks += 1

    def test_pause_parks_every_thread_and_resume_lets_them_go_on(self):
        control = RunControl(self.kick)
        loops = _Loops(control, 3)
        control.pause(WAIT_S)
        self.assertTrue(control.paused)
        frozen = list(loops.iterations)
        time.sleep(0.05)
        self.assertEqual(loops.iterations, frozen)
        control.resume()
        time.sleep(0.05)
        self.assertFalse(control.paused)
        self.assertTrue(all(now > then for now, then in zip(loops.iterations, frozen)))
        control.finish(VmExit(ExitReason.STOPPED, "done"))
        self.assertIs(control.wait_exit().reason, ExitReason.STOPPED)
        self.assertGreaterEqual(self.kicks, 2)

    def test_the_first_exit_wins_and_stops_every_thread(self):
        control = RunControl(self.kick)
        loops = _Loops(control, 2)
        control.finish(VmExit(ExitReason.POWER_OFF, "first"))
        control.finish(VmExit(ExitReason.FATAL_ERROR, "second"))
        self.assertEqual(control.wait_exit().message, "first")
        for thread in loops.threads:
            thread.join(WAIT_S)
            self.assertFalse(thread.is_alive())

    def test_a_thread_that_ends_on_its_own_ends_the_vm(self):
        control = RunControl(self.kick)
        control.threads_starting(1)
        control.thread_ended("vCPU 3", None)
        vm_exit = control.wait_exit()
        self.assertIs(vm_exit.reason, ExitReason.FATAL_ERROR)
        self.assertIn("vCPU 3 stopped unexpectedly", vm_exit.message)

    def test_a_pause_that_times_out_is_withdrawn(self):
        control = RunControl(self.kick)
        loops = _Loops(control, 2, park=False)      # these threads never reach a parking point
        with self.assertRaises(PauseTimeoutError):
            control.pause(0.05)
        self.assertFalse(control.pause_requested)
        self.assertFalse(control.control_requested)
        before = list(loops.iterations)
        time.sleep(0.05)
        self.assertTrue(all(now > then for now, then in zip(loops.iterations, before)))
        control.stop_threads()
        for thread in loops.threads:
            thread.join(WAIT_S)


if __name__ == "__main__":
    unittest.main()
