"""The shared base of medclass: errors, task heads, preprocessing, the model artefact and its architectures, the run
folder and the registries of plug-ins. Nothing here imports any other part of medclass (the layers are in the
README's Development section; `lint-imports` checks them)."""
