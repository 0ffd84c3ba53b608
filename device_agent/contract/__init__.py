"""The agent's public contract: the only part of device_agent the host imports (torch-free)."""
