"""Reading the corpus: one loader per format (`documents`), PDFs parsed in a child process
(`pdf`), structure-aware chunks sized in tiktoken tokens (`chunking`, `tokens`)."""
