"""Architectural numbers of arm64 (PSTATE bits, exception classes, system registers, PSCI)."""
