"""The gRPC service: server, servicer (converts only), security, device info."""
