"""Credentials: OAuth connections, the encrypted credential store, tokens and webhook signatures."""
