"""The two init programs of a guest that boots from a virtio-blk root drive.

``STAGE1_INIT`` is the initramfs's ``/init``: Debian's kernel builds virtio-mmio, the
virtio drivers and ext4 as modules, so it loads them (the list in
``/lib/modules/load-order``, written by the builder), waits for the ``root=`` device the VMM
put on the command line (``/dev/vda`` style names only; PARTUUID needs a partition table,
which petard's images do not have), mounts it ``ro`` or ``rw`` as the command line says,
and hands over with ``switch_root`` to ``/sbin/init`` on the drive.

``ROOTFS_INIT`` is that ``/sbin/init`` (PID 1, on the drive): it mounts the virtual file
systems, installs busybox's applet links into a tmpfs (so a read-only root works), prints
ROOTFS_READY_MARKER, runs ``/etc/petard/run`` if the image has one, then powers off
(``petard.test=poweroff`` on the command line) or runs a shell on the console.
"""

from petard.guest.init_script import SHELL_OR_POWEROFF

ROOTFS_READY_MARKER = "PETARD-ROOTFS-READY"
LOAD_ORDER_FILE = "lib/modules/load-order"
ROOT_WAIT_SECONDS = 20
RUN_HOOK = "etc/petard/run"

STAGE1_INIT = f"""#!/bin/busybox sh
# petard stage-1 init: load the virtio and ext4 modules, mount root=, switch_root.
/bin/busybox mount -t proc proc /proc
/bin/busybox mount -t sysfs sysfs /sys
/bin/busybox mount -t devtmpfs devtmpfs /dev
/bin/busybox --install -s
export PATH=/sbin:/bin:/usr/sbin:/usr/bin
for module in $(cat /{LOAD_ORDER_FILE}); do
    insmod "/lib/modules/$module" || echo "petard-init: insmod $module failed"
done
root=/dev/vda
mode=ro
for arg in $(cat /proc/cmdline); do
    case "$arg" in
        root=*) root="${{arg#root=}}" ;;
        ro) mode=ro ;;
        rw) mode=rw ;;
    esac
done
waited=0
while [ ! -b "$root" ] && [ $waited -lt {ROOT_WAIT_SECONDS * 10} ]; do
    sleep 0.1
    waited=$((waited + 1))
done
mkdir -p /newroot
if mount -t ext4 -o "$mode" "$root" /newroot; then
    mount --move /dev /newroot/dev 2>/dev/null || umount /dev
    umount /sys /proc
    exec switch_root /newroot /sbin/init
fi
echo "petard-init: cannot mount root $root ($mode)"
sync
poweroff -f
"""

ROOTFS_INIT = f"""#!/bin/busybox sh
# petard root file system init (PID 1, on the root drive).
/bin/busybox mount -t proc proc /proc
/bin/busybox mount -t sysfs sysfs /sys
/bin/busybox mount -t devtmpfs devtmpfs /dev 2>/dev/null
/bin/busybox mount -t tmpfs tmpfs /run
/bin/busybox mkdir -p /run/bin
/bin/busybox --install -s /run/bin
export PATH=/run/bin:/bin HOME=/root TERM=linux
echo {ROOTFS_READY_MARKER}
if [ -x /{RUN_HOOK} ]; then
    /{RUN_HOOK}
fi
"""+SHELL_OR_POWEROFF
