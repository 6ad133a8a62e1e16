"""Event-camera data: the N-MNIST reader, event transforms, the frame cache, the synthetic
N-MNIST generator and the event datasets built from them."""
