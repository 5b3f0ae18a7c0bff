"""Pure Kurento protocol: messages, errors, the type registry, connection state machines."""
