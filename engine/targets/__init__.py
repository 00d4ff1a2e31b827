"""How the engine reaches a host: one small protocol, one implementation per transport."""
