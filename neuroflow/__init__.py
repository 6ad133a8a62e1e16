"""neuroflow."""
