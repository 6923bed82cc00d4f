"""The Unicorn backend: aarch64 guests emulated by Unicorn, on any host.
