"""TextNAS search space: operations, layers, architectures, the supernet, the fixed model."""
