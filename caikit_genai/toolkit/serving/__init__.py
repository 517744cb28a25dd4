"""What every served request goes through: batching, size caps, request errors, safe paths,
metrics, shared tokenizers, CPU threads, the attention wire format."""
