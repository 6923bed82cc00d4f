"""Built-in devices, written as pluggy plugins against the public device API."""
