"""Process exit codes, as upstream's ``FcExitCode``: scripts tell failures apart by them."""

from __future__ import annotations

import enum


class ExitCode(enum.IntEnum):
    OK = 0
    GENERIC_ERROR = 1
    UNEXPECTED_ERROR = 2
    BAD_SYSCALL = 148
    SIGBUS = 149
    SIGSEGV = 150
    SIGXFSZ = 151
    BAD_CONFIGURATION = 152
    ARG_PARSING = 153
    SIGXCPU = 154
    SIGPIPE = 155
    SIGHUP = 156
    SIGILL = 157
