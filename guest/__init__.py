"""Guest artifacts: Debian's arm64 kernel and busybox fetched into a cache, initramfs built.
