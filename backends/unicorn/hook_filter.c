/*
 * Native front ends for the Unicorn hooks that fire hundreds of thousands of times per boot
 * (every MSR, every SYS instruction, every EL0 translation block), so that the calls the
 * Python callback would ignore never leave C.
 *
 * Built as petard.backends.unicorn._hook_filter and loaded with ctypes by hook_filter.py,
 * which holds the Python side of every decision: it fills the per-register class tables
 * below and receives every call these filters pass on. The filters only skip calls whose
 * Python handling is a no-op given the state in `struct hook_gate`, which Python owns (it
 * writes every field; C only reads the fields and counts what it answered), so the VMM
 * behaves the same with and without this library.
 *
 * Plain C with no Python headers: the slow paths are ctypes callbacks, which take the GIL
 * themselves.
 */

#include <stdint.h>
#include <time.h>

typedef struct uc_struct uc_engine;

/* Mirrors uc_arm64_cp_reg (unicorn/arm64.h). */
struct cp_reg {
    uint32_t crn, crm, op0, op1, op2;
    uint64_t val;
};

typedef uint32_t (*sys_insn_callback)(uc_engine *uc, int reg, const struct cp_reg *cp,
                                      void *user_data);
typedef void (*block_callback)(uc_engine *uc, uint64_t address, uint32_t size, void *user_data);

/* What a register (by its op0:op1:CRn:CRm:op2 encoding) asks of a filter; see hook_filter.py. */
enum register_class {
    CLASS_IGNORE = 0,             /* Python never acts on it */
    CLASS_CALL = 1,               /* always passed on */
    CLASS_CALL_ONCE_PER_PAGE = 2, /* passed on unless the value's page is `last_page` */
    CLASS_CALL_IF_UNMASKING = 3,  /* passed on if `irq_wanted` and the value clears `unmask_bit` */
};

/* Mirrored field for field by HookGate in hook_filter.py. */
struct hook_gate {
    volatile int64_t stop_deadline_ns;  /* CLOCK_MONOTONIC; written by other threads too */
    volatile uint32_t irq_wanted;
    uint64_t last_page;
    uint64_t page_mask;
    uint64_t unmask_bit;
    const uint8_t *msr_classes;         /* REGISTER_CLASSES entries each */
    const uint8_t *sys_classes;
    sys_insn_callback msr_slow;
    sys_insn_callback sys_slow;
    block_callback block_slow;
    uint64_t answered_msr;
    uint64_t answered_sys;
    uint64_t answered_block;
};

static int64_t monotonic_ns(void)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (int64_t)now.tv_sec * 1000000000 + now.tv_nsec;
}

static unsigned encoding(const struct cp_reg *cp)
{
    return (cp->op0 & 3) << 14 | (cp->op1 & 7) << 11 | (cp->crn & 15) << 7 | (cp->crm & 15) << 3
           | (cp->op2 & 7);
}

/* Nonzero if Python must see this access. */
static int wanted(const struct hook_gate *gate, uint8_t class, const struct cp_reg *cp)
{
    switch (class) {
    case CLASS_IGNORE:
        return 0;
    case CLASS_CALL_ONCE_PER_PAGE:
        return (cp->val & gate->page_mask) != gate->last_page;
    case CLASS_CALL_IF_UNMASKING:
        return gate->irq_wanted && !(cp->val & gate->unmask_bit);
    default:
        return 1;
    }
}

/* UC_HOOK_INSN / UC_ARM64_INS_MSR: every MSR is also a safe point to end the slice at. */
uint32_t petard_msr_filter(uc_engine *uc, int reg, const struct cp_reg *cp, void *user_data)
{
    struct hook_gate *gate = user_data;
    if (wanted(gate, gate->msr_classes[encoding(cp)], cp) || monotonic_ns() >= gate->stop_deadline_ns)
        return gate->msr_slow(uc, reg, cp, user_data);
    gate->answered_msr++;
    return 0;
}

/* UC_HOOK_INSN / UC_ARM64_INS_SYS: cache and TLB maintenance instructions. */
uint32_t petard_sys_filter(uc_engine *uc, int reg, const struct cp_reg *cp, void *user_data)
{
    struct hook_gate *gate = user_data;
    if (wanted(gate, gate->sys_classes[encoding(cp)], cp))
        return gate->sys_slow(uc, reg, cp, user_data);
    gate->answered_sys++;
    return 0;
}

/* UC_HOOK_BLOCK over EL0 addresses: a user-space block is a safe point to end the slice at. */
void petard_block_filter(uc_engine *uc, uint64_t address, uint32_t size, void *user_data)
{
    struct hook_gate *gate = user_data;
    if (monotonic_ns() >= gate->stop_deadline_ns) {
        gate->block_slow(uc, address, size, user_data);
        return;
    }
    gate->answered_block++;
}
