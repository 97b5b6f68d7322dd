"""Searching a generator: the config both algorithms share, AlphaGAN's bi-level search, random-WS."""
