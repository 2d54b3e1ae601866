"""Training pipeline of the default model and of the paper-size model (Training/README.md)."""
