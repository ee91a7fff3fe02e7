"""The harnesses that `medclass benchmark` and the scripts of benchmarks/ run: the MedMNIST recipe, frozen-feature
probes and decoder fuzzing (named apart from the top-level benchmarks/ folder of scripts)."""
