"""Reading the world: export files, gs:// objects, the Cloud Logging client side of a pull, the
sample generator and the bundled sample (docs/architecture.md)."""
