"""The running daemon: its listeners, supervised loops, replicas, status and systemd glue."""
