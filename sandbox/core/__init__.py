"""What every part of the sandbox shares: the model, the directory (world), the virtual clock, ids, errors, settings."""
