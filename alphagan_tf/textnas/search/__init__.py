"""Searching a TextNAS architecture: the shared config, darts, ENAS (controller, REINFORCE, child) and random-WS."""
