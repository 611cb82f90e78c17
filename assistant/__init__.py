"""A question-answering assistant over an organisation's own documents, with citations."""

__version__ = "0.1.0"
