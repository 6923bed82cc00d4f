"""The guest's ``/init``: a busybox shell script run by the kernel as PID 1.

It mounts proc, sysfs and devtmpfs, installs the busybox applet links, prints
READY_MARKER on the console, then either powers off at once (kernel command
line ``petard.test=poweroff``, for boot tests) or runs an interactive shell on
the console. PID 1 is this script, so ``poweroff``/``halt``/``reboot`` typed in
the shell signal it (USR2/USR1/TERM, busybox's convention) and it performs the
forced action; leaving the shell powers off too.
"""

READY_MARKER = "PETARD-GUEST-READY"
TEST_POWEROFF_ARG = "petard.test=poweroff"
BUSYBOX_PATH = "bin/busybox"

# The end of every petard init: power off at once for boot tests, else a console shell whose
# poweroff/halt/reboot reach PID 1 as busybox's signals; leaving the shell powers off too.
SHELL_OR_POWEROFF = f"""for arg in $(cat /proc/cmdline); do
    if [ "$arg" = "{TEST_POWEROFF_ARG}" ]; then
        sync
        poweroff -f
    fi
done
trap 'sync; poweroff -f' USR2
trap 'sync; halt -f' USR1
trap 'sync; reboot -f' TERM
setsid cttyhack sh -l </dev/console >/dev/console 2>&1 &
wait $!
sync
poweroff -f
"""

INIT_SCRIPT = f"""#!/bin/busybox sh
# petard guest init (PID 1). See petard/guest/init_script.py.
/bin/busybox mount -t proc proc /proc
/bin/busybox mount -t sysfs sysfs /sys
/bin/busybox mount -t devtmpfs devtmpfs /dev
/bin/busybox --install -s
export PATH=/sbin:/bin:/usr/sbin:/usr/bin HOME=/root TERM=linux
echo {READY_MARKER}
"""+SHELL_OR_POWEROFF
