"""Benchmarks that write JSON: the cost of a generator (`bench`), of a training step (`bench
--train`), of the whole upscale path (`upscale --bench`) and of starting up (`bench --startup`)."""
