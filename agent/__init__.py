"""recursa.agent: the dialogue manager, the recursive prompt, the summarizer and the model runtimes."""
