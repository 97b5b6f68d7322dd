"""Helpers outside the package: local_server.py, a stand-in for TF Serving (tests, demos)."""
