"""The Firecracker-compatible front: CLI, HTTP API server, pydantic models, config-file replay."""
