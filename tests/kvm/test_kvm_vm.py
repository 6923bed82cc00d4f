"""The KVM backend on a real /dev/kvm: VM and vCPU creation, the memory slot, the vGIC,
MMIO and system-event exits, interrupts, pause/resume/stop and the host checks.

Runs inside the emulated aarch64 host (tests/kvm_nested); skipped anywhere without KVM.
"""

import errno
import threading
import time
import unittest

from petard.backends.kvm import KvmBackend, KvmUnavailableError
from petard.backends.kvm import kvm_abi as abi
from petard.backends.kvm.backend import open_kvm
from petard.backends.kvm.vgic import DEVICE_TYPES, other_version
from petard.core.backend import ExitReason

import guest_programs
from kvm_testing import BOOT_PSTATE, RecordingDevice, expected_gic_version, host_gic, make_machine, requires_kvm

RUN_TIMEOUT_S = 60


def run_with_timeout(vm, timeout=RUN_TIMEOUT_S):
    result = {}
    thread = threading.Thread(target=lambda: result.setdefault("exit", vm.run()), daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        vm.pause()
        registers = vm.vcpu_registers(0)
        vm.stop()
        thread.join(10)
        raise AssertionError(f"the guest did not exit within {timeout} s; vCPU 0: "
                             + " ".join(f"{name}={value:#x}" for name, value in registers.items()))
    return result["exit"]


@requires_kvm
class KvmSystemTest(unittest.TestCase):
    def test_api_version_capabilities_and_mmap_size(self):
        system = open_kvm()
        try:
            self.assertEqual(system.api_version(), 12)
            for capability in (abi.KVM_CAP_USER_MEMORY, abi.KVM_CAP_ONE_REG, abi.KVM_CAP_ARM_PSCI_0_2,
                               abi.KVM_CAP_DEVICE_CTRL, abi.KVM_CAP_IMMEDIATE_EXIT):
                self.assertGreater(system.check_extension(capability), 0, capability)
            self.assertGreaterEqual(system.vcpu_mmap_size(), 4096)
        finally:
            system.close()

    def test_vgic_probe_matches_the_emulated_host_and_the_other_version_is_enodev(self):
        version = host_gic()
        expected = expected_gic_version()
        if expected is not None:
            self.assertEqual(version, expected)
        system = open_kvm()
        vm = system.create_vm()
        try:
            with self.assertRaises(OSError) as raised:
                vm.create_device(DEVICE_TYPES[other_version(version)], test=True)
            self.assertEqual(raised.exception.errno, errno.ENODEV)
            self.assertEqual(KvmBackend().gic_version(None), version)
            self.assertEqual(KvmBackend().gic_version(int(version)), version)
            with self.assertRaises(KvmUnavailableError) as refused:
                KvmBackend().gic_version(int(other_version(version)))
            self.assertIn(f"GICv{int(version)}", str(refused.exception))
        finally:
            vm.close()
            system.close()

    def test_missing_device_is_a_clear_error(self):
        with self.assertRaises(KvmUnavailableError) as raised:
            KvmBackend(device="/dev/kvm-does-not-exist")
        self.assertIn("does not exist", str(raised.exception))
        self.assertIn("--backend unicorn", str(raised.exception))

    def test_wrong_gic_version_is_a_clear_error(self):
        description, _ = make_machine("write_byte", other_version(host_gic()))
        with self.assertRaises(KvmUnavailableError) as raised:
            KvmBackend().create_vm(description)
        self.assertIn("--gic-version", str(raised.exception))


@requires_kvm
class KvmVmTest(unittest.TestCase):
    def setUp(self):
        self.gic = host_gic()
        self.vms = []

    def tearDown(self):
        for vm in self.vms:
            vm.close()

    def create(self, program, **options):
        description, device = make_machine(program, self.gic, **options)
        vm = KvmBackend().create_vm(description)
        self.vms.append(vm)
        return vm, device, description

    def test_boot_registers_and_secondaries_powered_off(self):
        vm, _, _ = self.create("write_byte", x0=0x1234_5678, vcpu_count=2)
        registers = vm.vcpu_registers(0)
        self.assertEqual(registers["pc"], guest_programs.PROGRAM_BASE)
        self.assertEqual(registers["x0"], 0x1234_5678)
        self.assertEqual(registers["pstate"], BOOT_PSTATE)
        self.assertEqual(vm.vcpus[0].fd.get_mp_state(), abi.KVM_MP_STATE_RUNNABLE)
        self.assertEqual(vm.vcpus[1].fd.get_mp_state(), abi.KVM_MP_STATE_STOPPED)
        self.assertEqual(vm.gic_version, self.gic)

    def test_mmio_write_exit_then_system_off(self):
        vm, device, _ = self.create("write_byte")
        with self.assertLogs("petard.vcpu", "INFO") as logs:
            vm_exit = run_with_timeout(vm)
        self.assertIs(vm_exit.reason, ExitReason.POWER_OFF, vm_exit.describe())
        self.assertEqual(device.writes, [(0, 1, 0x41)])
        self.assertIn("Received KVM_SYSTEM_EVENT: type: 1, event: [0]", "\n".join(logs.output))

    def test_mmio_read_value_reaches_the_guest_register(self):
        vm, device, _ = self.create("read_echo", device=RecordingDevice(read_value=0x1234_5677))
        vm_exit = run_with_timeout(vm)
        self.assertIs(vm_exit.reason, ExitReason.POWER_OFF, vm_exit.describe())
        self.assertEqual(device.reads, [(0, 4)])
        self.assertEqual(device.writes, [(4, 4, 0x1234_5678)])

    def test_guest_ram_is_the_host_mapping(self):
        vm, device, description = self.create("ram_roundtrip")
        memory = description.memory
        memory.write_u64(guest_programs.RAM_MAILBOX, 0x0123_4567_89AB_CDEF)
        vm_exit = run_with_timeout(vm)
        self.assertIs(vm_exit.reason, ExitReason.POWER_OFF, vm_exit.describe())
        self.assertEqual(device.writes, [(8, 8, 0x0123_4567_89AB_CDEF)])
        self.assertEqual(memory.read_u64(guest_programs.RAM_MAILBOX + 8), 0xFEDC_BA98_7654_3210)

    def test_system_reset_is_a_reset_exit(self):
        vm, _, _ = self.create("reset")
        with self.assertLogs("petard.vcpu", "INFO") as logs:
            vm_exit = run_with_timeout(vm)
        self.assertIs(vm_exit.reason, ExitReason.RESET)
        self.assertIn("Received KVM_SYSTEM_EVENT: type: 2, event: [0]", "\n".join(logs.output))

    def test_pause_resume_keeps_the_state_exact(self):
        count = 400_000
        vm, device, _ = self.create("count_writes", x0=count)
        result = {}
        thread = threading.Thread(target=lambda: result.setdefault("exit", vm.run()), daemon=True)
        thread.start()
        for _ in range(3):
            time.sleep(0.3)
            vm.pause()
            self.assertTrue(vm.paused)
            registers = vm.vcpu_registers(0)
            seen = len(device.writes)
            self.assertGreater(seen, 0)
            # every write so far landed and none is half done: x4 holds the value last
            # written (stopped before the add) or the next one (stopped after it)
            self.assertIn(registers["x4"], (seen - 1, seen))
            self.assertTrue(guest_programs.PROGRAM_BASE <= registers["pc"] < guest_programs.PROGRAM_BASE + 0x100)
            self.assertEqual(device.writes[-1][2], seen - 1)
            time.sleep(0.2)
            self.assertEqual(len(device.writes), seen, "the guest ran while paused")
            self.assertEqual(vm.vcpu_registers(0), registers)
            vm.resume()
        vm.stop()
        thread.join(RUN_TIMEOUT_S)
        self.assertIs(result["exit"].reason, ExitReason.STOPPED)
        values = [value for _, _, value in device.writes]
        self.assertEqual(values, list(range(len(values))), "writes lost or repeated across pauses")

    def test_count_loop_runs_to_completion_with_every_exit_served(self):
        vm, device, _ = self.create("count_writes", x0=2000)
        vm_exit = run_with_timeout(vm)
        self.assertIs(vm_exit.reason, ExitReason.POWER_OFF, vm_exit.describe())
        self.assertEqual([value for _, _, value in device.writes], list(range(2000)))
        self.assertEqual(vm.vcpus[0].exit_count, 2001)

    # --- the neutral state (the same register programs and expectations as the Unicorn test) ---

    def paused_register_program(self, el1t):
        vm, _, description = self.create("registers_el1t" if el1t else "registers_el1h")
        result = {}
        thread = threading.Thread(target=lambda: result.setdefault("exit", vm.run()), daemon=True)
        thread.start()
        deadline = time.monotonic() + RUN_TIMEOUT_S
        while description.memory.read_u64(guest_programs.READY_FLAG) != 1:
            self.assertLess(time.monotonic(), deadline, "the register program never got ready")
            time.sleep(0.01)
        vm.pause()
        return vm, description, thread

    def test_the_state_holds_what_the_register_programs_set(self):
        for el1t in (False, True):
            with self.subTest(el1t=el1t):
                vm, description, thread = self.paused_register_program(el1t)
                state = vm.vcpu_state(0)
                vm.stop()
                thread.join(RUN_TIMEOUT_S)
                mismatches = guest_programs.register_state_mismatches(state, el1t, description.memory.read_u32)
                self.assertEqual(mismatches, [])
                self.assertTrue(state.powered_on)
                self.assertEqual(state.mpidr, 0)

    def test_a_saved_state_goes_on_in_a_fresh_vm(self):
        vm, description, thread = self.paused_register_program(False)
        saved = vm.save_state()
        vm.stop()
        thread.join(RUN_TIMEOUT_S)
        fresh = KvmBackend().create_vm(description)
        self.vms.append(fresh)
        fresh.restore_state(saved)
        loaded = fresh.save_state()
        for before, after in zip(saved.vcpus, loaded.vcpus):
            self.assertGreaterEqual(after.timer.virtual_count, before.timer.virtual_count)
            after.timer.virtual_count = before.timer.virtual_count
        self.assertEqual(loaded, saved)
        result = {}
        runner = threading.Thread(target=lambda: result.setdefault("exit", fresh.run()), daemon=True)
        runner.start()
        time.sleep(0.5)
        fresh.pause()
        state = fresh.vcpu_state(0)
        fresh.stop()
        runner.join(RUN_TIMEOUT_S)
        self.assertEqual(guest_programs.register_state_mismatches(state, False, description.memory.read_u32), [])
        self.assertIs(result["exit"].reason, ExitReason.STOPPED)

    def test_a_state_for_another_machine_is_refused(self):
        vm, _, thread = self.paused_register_program(False)
        saved = vm.save_state()
        vm.stop()
        thread.join(RUN_TIMEOUT_S)
        other, _, _ = self.create("registers_el1h", vcpu_count=2)
        with self.assertRaisesRegex(Exception, "1 vCPUs were saved, the machine has 2"):
            other.restore_state(saved)


if __name__ == "__main__":
    unittest.main()
