"""Choices of the model artefact's fields that the command line offers too, kept free of heavy imports so that
`medclass --help` can list them without loading PyTorch."""

HEADS = ("linear", "mlp")  # the classifier on the pooled features (core/architectures.py builds it)
MLP_HIDDEN = 256  # width of the mlp classifier's hidden layer
