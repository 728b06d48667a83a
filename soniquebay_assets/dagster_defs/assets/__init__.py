"""Assets, one module per asset group."""
