"""What a client must know to talk to the agent beyond the messages: the service's name, the upload chunk
size, and how long the agent may take to check an uploaded model before it answers."""

from __future__ import annotations

from device_agent.contract.proto import agent_pb2

SERVICE_NAME = agent_pb2.DESCRIPTOR.services_by_name["Agent"].full_name
"""The gRPC service name (also the name the health service reports it under)."""
CHUNK_BYTES = 1 << 20
"""Upload chunk size the host uses; the agent's message limit is a multiple of it, leaving room for framing."""
CHECK_CPU_S = 60
"""CPU seconds the agent's model-checking process may use; a real policy needs well under one."""
CHECK_WALL_S = 4 * CHECK_CPU_S
"""Wall time after which the agent abandons a model check (a busy device gives the process a share of a core):
a client's upload deadline must leave this much beyond the transfer."""
