"""Corpus -> index, incremental and atomic, with progress (`indexer`); the same steps run by Ray
Data (`ray`)."""
