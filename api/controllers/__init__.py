"""HTTP controllers, one module per context."""
