"""Who may use the station's own servers (the operator page, OPC UA): users with a role and
a password hash in the config or the environment, never a password."""
