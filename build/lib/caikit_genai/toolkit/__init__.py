"""Shared helpers: device and precision choice, the one training loop, atomic model dirs,
training-data readers and the offline data sources."""
