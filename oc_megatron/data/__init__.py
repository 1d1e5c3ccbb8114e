"""Data: tokenization into Megatron indexed datasets (preprocess), blended GPT datasets (blend), tiny offline data."""
