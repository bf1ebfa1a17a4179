"""The Flax linen face: torch.nn's recurrent layers, cells, Linear and Embedding as linen modules."""
