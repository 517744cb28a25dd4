"""Shared mechanisms, one copy each, one package per concern: serving, generation, models,
training, metrics and offline_data (docs/architecture.md says what each holds)."""
