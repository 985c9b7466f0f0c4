"""Medical SAM 2."""
