/* The reference KVM exit loop for benchmarks/kvm_exit_cost.py: the smallest C monitor that
 * runs the same guest program as petard's Python loop and serves its MMIO writes.
 *
 *   kvm_exit_loop <guest.bin> <exits> <gic-version 2|3>
 *
 * Guest RAM: 2 MiB at 0x80000000 holding guest.bin, vCPU 0 starting there with x0 = exits,
 * an in-kernel vGIC at petard's (Firecracker's) addresses, PSCI 0.2. Every MMIO write is
 * counted; the time between the first and the last write is printed as ns per exit.
 * Cross-compiled at run time with Debian's gcc-aarch64-linux-gnu (never committed). */
#include <fcntl.h>
#include <linux/kvm.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define RAM_BASE 0x80000000UL
#define RAM_SIZE (2UL << 20)
#define GICV3_DIST 0x3FFF0000UL
#define GICV3_REDIST (0x3FFF0000UL - 0x20000UL)
#define GICV2_DIST 0x3FFFF000UL
#define GICV2_CPU 0x3FFFD000UL
#define CORE_REG(off) (KVM_REG_ARM64 | KVM_REG_SIZE_U64 | KVM_REG_ARM_CORE | ((off) / 4))

static void die(const char *what) { perror(what); exit(2); }

static int check(int result, const char *what) {
    if (result < 0) die(what);
    return result;
}

static void set_attr(int fd, uint32_t group, uint64_t attr, uint64_t value) {
    struct kvm_device_attr a = { .group = group, .attr = attr, .addr = (uint64_t)(uintptr_t)&value };
    check(ioctl(fd, KVM_SET_DEVICE_ATTR, &a), "KVM_SET_DEVICE_ATTR");
}

static void set_reg(int fd, uint64_t id, uint64_t value) {
    struct kvm_one_reg r = { .id = id, .addr = (uint64_t)(uintptr_t)&value };
    check(ioctl(fd, KVM_SET_ONE_REG, &r), "KVM_SET_ONE_REG");
}

static uint64_t now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000000u + t.tv_nsec;
}

int main(int argc, char **argv) {
    if (argc != 4) { fprintf(stderr, "usage: %s guest.bin exits gic-version\n", argv[0]); return 2; }
    uint64_t exits = strtoull(argv[2], 0, 0);
    int gic_version = atoi(argv[3]);
    int kvm = check(open("/dev/kvm", O_RDWR | O_CLOEXEC), "/dev/kvm");
    int vm = check(ioctl(kvm, KVM_CREATE_VM, 0), "KVM_CREATE_VM");
    uint8_t *ram = mmap(0, RAM_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (ram == MAP_FAILED) die("mmap");
    int guest = check(open(argv[1], O_RDONLY), argv[1]);
    check(read(guest, ram, RAM_SIZE), "read guest");
    close(guest);
    struct kvm_userspace_memory_region region = {
        .slot = 0, .guest_phys_addr = RAM_BASE, .memory_size = RAM_SIZE, .userspace_addr = (uint64_t)(uintptr_t)ram };
    check(ioctl(vm, KVM_SET_USER_MEMORY_REGION, &region), "KVM_SET_USER_MEMORY_REGION");

    struct kvm_create_device gic = { .type = gic_version == 3 ? KVM_DEV_TYPE_ARM_VGIC_V3 : KVM_DEV_TYPE_ARM_VGIC_V2 };
    check(ioctl(vm, KVM_CREATE_DEVICE, &gic), "KVM_CREATE_DEVICE");
    if (gic_version == 3) {
        set_attr(gic.fd, KVM_DEV_ARM_VGIC_GRP_ADDR, KVM_VGIC_V3_ADDR_TYPE_DIST, GICV3_DIST);
        set_attr(gic.fd, KVM_DEV_ARM_VGIC_GRP_ADDR, KVM_VGIC_V3_ADDR_TYPE_REDIST, GICV3_REDIST);
    } else {
        set_attr(gic.fd, KVM_DEV_ARM_VGIC_GRP_ADDR, KVM_VGIC_V2_ADDR_TYPE_DIST, GICV2_DIST);
        set_attr(gic.fd, KVM_DEV_ARM_VGIC_GRP_ADDR, KVM_VGIC_V2_ADDR_TYPE_CPU, GICV2_CPU);
    }
    set_attr(gic.fd, KVM_DEV_ARM_VGIC_GRP_NR_IRQS, 0, 128);

    int vcpu = check(ioctl(vm, KVM_CREATE_VCPU, 0), "KVM_CREATE_VCPU");
    struct kvm_vcpu_init init;
    check(ioctl(vm, KVM_ARM_PREFERRED_TARGET, &init), "KVM_ARM_PREFERRED_TARGET");
    init.features[0] |= 1u << KVM_ARM_VCPU_PSCI_0_2;
    check(ioctl(vcpu, KVM_ARM_VCPU_INIT, &init), "KVM_ARM_VCPU_INIT");
    set_attr(gic.fd, KVM_DEV_ARM_VGIC_GRP_CTRL, KVM_DEV_ARM_VGIC_CTRL_INIT, 0);
    set_reg(vcpu, CORE_REG(offsetof(struct kvm_regs, regs.pc)), RAM_BASE);
    set_reg(vcpu, CORE_REG(offsetof(struct kvm_regs, regs.regs[0])), exits);
    set_reg(vcpu, CORE_REG(offsetof(struct kvm_regs, regs.pstate)), 0x3C5);

    int run_size = check(ioctl(kvm, KVM_GET_VCPU_MMAP_SIZE, 0), "KVM_GET_VCPU_MMAP_SIZE");
    struct kvm_run *run = mmap(0, run_size, PROT_READ | PROT_WRITE, MAP_SHARED, vcpu, 0);
    if (run == MAP_FAILED) die("mmap kvm_run");

    uint64_t writes = 0, first = 0, last = 0, last_value = 0;
    for (;;) {
        check(ioctl(vcpu, KVM_RUN, 0), "KVM_RUN");
        if (run->exit_reason == KVM_EXIT_MMIO) {
            if (run->mmio.is_write) {
                memcpy(&last_value, run->mmio.data, 8);
                if (++writes == 1) first = now_ns();
                if (writes == exits) last = now_ns();
            } else {
                memset(run->mmio.data, 0, sizeof run->mmio.data);
            }
            continue;
        }
        if (run->exit_reason == KVM_EXIT_SYSTEM_EVENT) break;
        fprintf(stderr, "unexpected exit reason %u\n", run->exit_reason);
        return 1;
    }
    if (writes != exits || last_value != exits - 1) {
        fprintf(stderr, "served %llu writes (last value %llu), expected %llu\n",
                (unsigned long long)writes, (unsigned long long)last_value, (unsigned long long)exits);
        return 1;
    }
    printf("c-loop ns-per-exit %.0f\n", (double)(last - first) / (double)(exits - 1));
    return 0;
}
