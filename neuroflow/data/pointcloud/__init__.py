"""Point clouds: ModelNet40 and OFF readers, mesh surface sampling, the synthetic shapes
generator and the point-cloud datasets built from them."""
