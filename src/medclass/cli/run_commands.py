"""Model commands: train, evaluate, predict, demo."""
