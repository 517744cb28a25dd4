"""Model dirs and devices: the Hugging Face layout, atomic saves and metrics.json, device and mixed
precision."""
