"""Benchmarks that ship with medclass (`medclass benchmark ...`)."""
