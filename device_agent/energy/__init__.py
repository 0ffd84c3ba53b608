"""Energy: meters found on this device, the recorder that reads them between phases, the sampler."""
