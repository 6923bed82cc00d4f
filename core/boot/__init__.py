"""Putting a guest into memory: kernel loading, initrd placement, command line, FDT."""
